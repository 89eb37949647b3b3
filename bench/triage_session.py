"""What post-run triage adds to a session, side by side with recording alone.

The generated 2,000-test suite (`bench.gen_suite`) with 8 failing tests, 8
causes, is recorded once into a seed store. Each round then copies the seed
and runs, in rotating order:

- plain pytest (``-p no:testmem``);
- ``pytest --memory --no-memory-triage`` (recording, retry advice);
- ``pytest --memory`` (the default: triage at the end of the session);

first on the same suite (8 known failures: every signature was seen in the
seed run), then on one whose 8 tests fail on other fields (8 new causes:
each is embedded and queried once). Wall time is the session's from start
to exit; CPU time counts every process of it (pytest, the store process, the
triage process: `resource.getrusage(RUSAGE_CHILDREN)` around each run).

    python -m bench.triage_session --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

from bench import PYTHON, Timing, table, timed
from bench.gen_suite import generate
from bench.overhead import child_env

KNOWN = ("status", "state", "phase", "stage", "step", "mode", "kind", "level")
NEW = ("paid_at", "carrier", "invoice", "currency", "channel", "coupon", "warehouse", "refund")
PLAIN, RECORD, TRIAGE = "pytest", "pytest --memory --no-memory-triage", "pytest --memory"


def commands(store: Path) -> dict[str, list[str]]:
    pytest = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    memory = [*pytest, "--memory", f"--memory-dir={store}"]
    return {
        PLAIN: [*pytest, "-p", "no:testmem"],
        RECORD: [*memory, "--no-memory-triage"],
        TRIAGE: memory,
    }


def measure(work: Path, fields: tuple[str, ...], rounds: int) -> dict[str, list[Timing]]:
    """Rounds of the three sessions on the suite failing on ``fields``,
    each memory session on a fresh copy of the seed store."""
    suite = generate(work / "suite", failing=len(fields), fields=fields)
    env = child_env()
    times: dict[str, list[Timing]] = {name: [] for name in commands(work)}
    for n in range(rounds + 1):  # round 0 warms the caches (bytecode, rewritten tests)
        names = list(times)
        for name in names[n % 3 :] + names[: n % 3]:
            store = work / "store"
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(work / "seed", store)
            timing = timed(commands(store)[name], cwd=suite, env=env, ok=(1,))
            if n:
                times[name].append(timing)
    return times


def seed(work: Path) -> None:
    """The store after one recorded, triaged run of the suite failing on KNOWN."""
    suite = generate(work / "suite", failing=len(KNOWN), fields=KNOWN)
    timed(commands(work / "seed")[TRIAGE], cwd=suite, env=child_env(), ok=(1,))


def report(label: str, times: dict[str, list[Timing]]) -> str:
    def med(name: str, what: str) -> float:
        return statistics.median(getattr(t, what) for t in times[name])

    rows = [
        [
            f"{label}: {name}",
            f"{med(name, 'wall_s'):.2f}",
            f"{med(name, 'wall_s') / med(PLAIN, 'wall_s'):.2f}",
            f"{med(name, 'cpu_s'):.2f}",
            f"{med(name, 'cpu_s') / med(PLAIN, 'cpu_s'):.2f}",
        ]
        for name in times
    ]
    added = [t.wall_s - r.wall_s for t, r in zip(times[TRIAGE], times[RECORD], strict=True)]
    cpu = [t.cpu_s - r.cpu_s for t, r in zip(times[TRIAGE], times[RECORD], strict=True)]
    rows.append(
        [
            f"{label}: triage added (per round, triage - recording)",
            f"{statistics.median(added):+.2f} ({min(added):+.2f} … {max(added):+.2f})",
            "",
            f"{statistics.median(cpu):+.2f}",
            "",
        ]
    )
    return table(["session", "wall s", "x plain", "CPU s", "x plain"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="testmem-triage-session-") as tmp:
        work = Path(tmp)
        seed(work)
        print(report("8 known", measure(work, KNOWN, args.rounds)))
        print(report("8 new", measure(work, NEW, args.rounds)))


if __name__ == "__main__":
    main()
