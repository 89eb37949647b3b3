"""Recording overhead: `pytest --memory` against plain pytest and pytest-reportlog.

One run interleaves the variants round by round (the order rotates each
round) on a generated 2,000-test suite, so a busy neighbour on the machine
slows all of them alike; wall and CPU times are compared to plain pytest with
testmem disabled (``-p no:testmem``), see `report`. With ``--instructions``
it counts the instructions of each variant's test process instead, and
estimates its cycles from a simulation of the CPU's caches (valgrind's
cachegrind): slower, but deaf to the machine's noise.

    python -m bench.overhead --rounds 15
    python -m bench.overhead --rounds 9 --xdist 2 --no-triage
    python -m bench.overhead --rounds 15 --one-test --no-triage
    python -m bench.overhead --instructions
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import PYTHON, Timing, median, table, timed
from bench.gen_suite import TESTS_PER_MODULE, generate

BASELINE = "pytest -p no:testmem"
RECORDING = "pytest --memory --memory-retries=0 --no-memory-triage"


def variants(work: Path, extra: Sequence[str] = (), triage: bool = True) -> dict[str, list[str]]:
    """The commands compared, each with ``extra`` arguments (``-n 2``)."""
    pytest = [PYTHON, "-m", "pytest", "-q", *extra]
    memory = [*pytest, "--memory", "--no-memory-triage"]
    commands = {
        BASELINE: [*pytest, "-p", "no:testmem"],
        "pytest (testmem installed, off)": pytest,
        "pytest --report-log": [*pytest, "-p", "no:testmem", f"--report-log={work / 'log.jsonl'}"],
        # Recording alone: the event log, what pytest-reportlog compares with.
        "pytest --memory --memory-retries=0 --no-memory-triage": [
            *memory, "--memory-retries=0", f"--memory-dir={work / 'store'}"
        ],
        # The default adds the agents: in-run retry advice, which reads the
        # tests' history at the first failure, and post-run triage (a one-off
        # cost per run, not per test).
        "pytest --memory --no-memory-triage": [*memory, f"--memory-dir={work / 'advised'}"],
        "pytest --memory": [*pytest, "--memory", f"--memory-dir={work / 'triaged'}"],
    }  # fmt: skip
    if not triage:
        del commands["pytest --memory"]
    return commands


def child_env() -> dict[str, str]:
    """The environment of a developer's shell: bytecode caching on (so
    rewritten test modules are not recompiled every run), no testmem settings."""
    env = dict(os.environ)
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "TESTMEM_DIR"):
        env.pop(name, None)
    return env


def warm_up(commands: dict[str, list[str]], suite: Path, env: dict[str, str]) -> None:
    """Run each variant once: byte-compile the suite, create the stores."""
    for command in commands.values():
        timed(command, cwd=suite, env=env, ok=(0, 1))


def measure(
    suite: Path, work: Path, rounds: int, commands: dict[str, list[str]]
) -> dict[str, list[Timing]]:
    env = child_env()
    names = list(commands)
    warm_up(commands, suite, env)
    timings: dict[str, list[Timing]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            timings[name].append(timed(commands[name], cwd=suite, env=env, ok=(0, 1)))
    return timings


def one_test(root: Path) -> Path:
    """A suite of one passing test: what a run costs before its tests."""
    root.mkdir(parents=True)
    (root / "test_one.py").write_text("def test_one():\n    assert True\n")
    return root


READER = [PYTHON, "-c", "import sys; from testmem.memory.query import History; "
          "from testmem.memory.store import Store; History(Store.open(sys.argv[1]))"]  # fmt: skip


def settle_cost(store: Path, record: list[str], suite: Path, rounds: int = 3) -> list[Timing]:
    """What the spool defers to the next reader: a cold reader's CPU and wall
    after one more recorded run (it commits that run's spool first) minus
    the same reader's once nothing is spooled, per round."""
    env = child_env()
    extra = []
    for _ in range(rounds):
        timed(record, cwd=suite, env=env, ok=(0, 1))
        settling, settled = timed([*READER, str(store)]), timed([*READER, str(store)])
        extra.append(Timing(settling.wall_s - settled.wall_s, settling.cpu_s - settled.cpu_s))
    return extra


def settle_report(extra: list[Timing]) -> str:
    return (
        "Deferred to the next reader (a cold `History` open that commits one run's spool, "
        f"minus the same open with nothing spooled, median of {len(extra)}): "
        f"{median([t.cpu_s for t in extra]):.3f} s CPU, "
        f"{median([t.wall_s for t in extra]):.3f} s wall."
    )


def recorded_results(store: Path) -> list[int]:
    """Results per recorded run: proof that `--memory` really recorded."""
    from testmem.memory.query import History
    from testmem.memory.store import Store

    rows = History(Store.open(store)).sql(
        "SELECT count(*) FROM results GROUP BY run_id ORDER BY min(occurred_at)"
    )
    return [int(row[0]) for row in rows.rows]


def report(timings: dict[str, list[Timing]]) -> str:
    """Each variant against plain pytest, two ways: the median of its
    per-round ratios (a round's runs follow each other, so the machine's
    drift over the minutes of a benchmark cancels out of them), and the
    ratio of the fastest runs (a neighbour on the machine only ever slows a
    run down, so the fastest of several is the least disturbed: what
    `timeit` reports for the same reason)."""
    base = timings[BASELINE]
    fastest_base = min(t.wall_s for t in base)
    rows = []
    for name, runs in timings.items():
        wall_ratio = median([t.wall_s / b.wall_s for t, b in zip(runs, base, strict=True)])
        wall_more = median([t.wall_s - b.wall_s for t, b in zip(runs, base, strict=True)])
        cpu_ratio = median([t.cpu_s / b.cpu_s for t, b in zip(runs, base, strict=True)])
        fastest = min(t.wall_s for t in runs)
        rows.append(
            [f"`{name}`", f"{median([t.wall_s for t in runs]):.2f}", f"{wall_ratio:.3f}",
             f"{wall_more * 1000:+.0f}",
             f"{fastest:.2f}", f"{fastest / fastest_base:.3f}",
             f"{median([t.cpu_s for t in runs]):.2f}", f"{cpu_ratio:.3f}"]
        )  # fmt: skip
    header = [
        "variant", "wall s (median)", "ratio to plain (median of rounds)",
        "wall ms more than plain (median of rounds)",
        "wall s (fastest)", "ratio of fastest", "CPU s (median)", "CPU ratio",
    ]  # fmt: skip
    return table(header, rows)


# cachegrind's summary lines: instructions, data reads + writes, and the
# misses of the first-level caches and of the last-level one.
_CACHEGRIND = {
    "I": r"I\s+refs:\s+([\d,]+)",
    "D": r"D\s+refs:\s+([\d,]+)",
    "L1 misses": r"(?:I1|D1)\s+misses:\s+([\d,]+)",
    "LL misses": r"LL misses:\s+([\d,]+)",
}


def estimated_cycles(counts: dict[str, int]) -> int:
    """Itamar Turner-Trauring's estimate from cachegrind's counts (used by
    iai and pythonspeed.com for benchmarks in noisy CI): an L1 hit costs a
    cycle, a last-level hit 5, a trip to RAM 35. Unlike instructions, it
    charges the recorder for the cache misses its code causes."""
    accesses = counts["I"] + counts["D"]
    l1_misses, ll_misses = counts["L1 misses"], counts["LL misses"]
    return accesses - l1_misses + 5 * (l1_misses - ll_misses) + 35 * ll_misses


def instructions(suite: Path, work: Path) -> dict[str, tuple[int, int]]:
    """Instructions and estimated cycles (see `estimated_cycles`) of each
    variant, every process it starts included (the test process, xdist's
    workers, a store process, git), under valgrind's cachegrind: figures no
    neighbour on the machine can disturb. Post-run triage is left out (under
    valgrind, loading the model alone takes minutes)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (e.g. apt install valgrind)")
    commands = variants(work, triage=False)
    env = child_env()
    warm_up(commands, suite, env)

    def count(command: list[str]) -> tuple[int, int]:
        done = subprocess.run(  # the summary on stderr is all we read
            ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--trace-children=yes",
             "--cachegrind-out-file=/dev/null", *command],
            cwd=suite, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        counts = {
            name: sum(int(n.replace(",", "")) for n in re.findall(pattern, done.stderr))
            for name, pattern in _CACHEGRIND.items()
        }
        if done.returncode not in (0, 1) or not all(counts.values()):
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode} under valgrind")
        return counts["I"], estimated_cycles(counts)

    with ThreadPoolExecutor(max_workers=2) as pool:  # counts do not depend on the load
        return dict(zip(commands, pool.map(count, commands.values()), strict=True))


def instructions_report(counts: dict[str, tuple[int, int]]) -> str:
    base, base_cycles = counts[BASELINE]
    rows = [
        [f"`{k}`", f"{i / 1e9:.3f}", f"{i / base:.3f}", f"{c / 1e9:.3f}", f"{c / base_cycles:.3f}"]
        for k, (i, c) in counts.items()
    ]
    header = ["variant", "instructions (billions)", "ratio to plain",
              "estimated cycles (billions)", "ratio to plain"]  # fmt: skip
    return table(header, rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modules", type=int, default=20, help="100 tests each")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind) instead"
    )
    parser.add_argument("--xdist", type=int, default=0, help="run every variant with -n N")
    parser.add_argument("--no-triage", action="store_true", help="leave `pytest --memory` out")
    parser.add_argument(
        "--one-test", action="store_true", help="a suite of one passing test: start-up alone"
    )
    args = parser.parse_args(argv)
    expected = 1 if args.one_test else args.modules * TESTS_PER_MODULE
    extra = ["-n", str(args.xdist)] if args.xdist else []
    with tempfile.TemporaryDirectory(prefix="testmem-bench-") as tmp:
        work = Path(tmp)
        suite = (
            one_test(work / "suite") if args.one_test else generate(work / "suite", args.modules)
        )
        if args.instructions:
            counted = instructions(suite, work)
        else:
            commands = variants(work, extra, triage=not args.no_triage)
            timings = measure(suite, work, args.rounds, commands)
            deferred = settle_cost(work / "store", commands[RECORDING], suite)
        counts = recorded_results(work / "store")
    if not counts or any(count != expected for count in counts):
        raise SystemExit(f"--memory recorded {counts} results per run, expected {expected}")
    if args.instructions:
        text = (
            f"Instructions and estimated cycles of every process, {expected} tests "
            f"(valgrind --tool=cachegrind --cache-sim=yes --trace-children=yes, one run each):\n\n"
            f"{instructions_report(counted)}"
        )
    else:
        text = (
            f"Recording overhead, {expected} tests{' with ' + ' '.join(extra) if extra else ''}, "
            f"{args.rounds} interleaved rounds ({len(counts)} runs recorded, {expected} "
            f"results each):\n\n{report(timings)}\n\n{settle_report(deferred)}"
        )
    print(text)
    return text


if __name__ == "__main__":
    main()
