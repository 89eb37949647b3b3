"""A store of 100 real recorded runs, for benchmarks and tests of cold commands.

The shop API's twelve releases (examples/builds.py) played over and over,
each a real ``pytest --memory`` run of the example suite, triaged, its heals
applied and its new fields' tests generated (`examples.scenario.Scenario`):
so the store holds what a team's store holds after a few weeks, exchanges,
failures, incidents, decisions, defects filed and updated, heals. The story
restarts at the baseline every twelve builds (a rollback), which breaks the
healed tests again, as a real rollback would.

Built once under bench/out/ and reused (a build takes several minutes):

    python -m bench.command_store [--runs 100] [--out bench/out/commands-100]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench import ROOT

DEFAULT = ROOT / "bench" / "out" / "commands-100"


def builds(runs: int) -> list:  # type: ignore[type-arg]
    """``runs`` builds: the story again and again, each with its own seed."""
    from testmem.examples.builds import BUILDS

    story = len(BUILDS)
    return [
        replace(
            BUILDS[n % story],
            number=n,
            label=f"{BUILDS[n % story].label}.{n // story}",
            seed=n,
        )
        for n in range(runs)
    ]


def ensure(workdir: Path = DEFAULT, runs: int = 100) -> Path:
    """The store directory under ``workdir``, played first if it is not there."""
    store = workdir / "store"
    if (workdir / "complete").exists():
        return store
    from testmem.examples.scenario import Scenario

    scenario = Scenario(workdir.resolve(), builds(runs))
    scenario.play(lambda r: print(f"build {r.build.number + 1}/{runs}", flush=True))
    (workdir / "complete").write_text(f"{runs} runs\n")
    return store


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    print(ensure(args.out, args.runs))


if __name__ == "__main__":
    main()
