"""Cold queries over 1,000,000 results: `testmem runs` and `testmem history`.

Builds a store of ``runs`` times ``tests`` TestFinished events (one commit per run,
as a recorded run makes them) and, side by side, the same results as
pytest-reportlog JSON lines (one file per run, one line per test's call
phase), which is what a user without testmem would keep and scan. Each
question is then answered by a fresh process, several times, interleaved:

- ``testmem runs`` against a Python script that tallies every report log;
- ``testmem history NODEID`` against a Python script that scans the report
  logs for the test (substring filter first, then ``json.loads``), and
  against ``grep -F`` (raw lines only, the fastest thing a user might type).

The store is measured as recorded, then again after ``testmem compact``.

    python -m bench.query_cold --runs 500 --tests 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import PYTHON, Timing, median, table, timed
from testmem.memory.events import uuid7

TESTMEM = [str(Path(PYTHON).parent / "testmem")]  # the console script, as a user runs it

RUNS_SCRIPT = """
import glob, json, sys
runs = []
for path in glob.glob(sys.argv[1] + "/*.jsonl"):
    counts, started = {}, None
    with open(path) as log:
        for line in log:
            record = json.loads(line)
            if record["$report_type"] == "TestReport":
                counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
            elif record["$report_type"] == "SessionStart":
                started = record["start"]
    runs.append((started, path, counts))
for started, path, counts in sorted(runs, reverse=True)[:20]:
    print(started, path, counts)
"""

HISTORY_SCRIPT = """
import glob, json, sys
nodeid, needle = sys.argv[2], json.dumps(sys.argv[2])
found = []
for path in glob.glob(sys.argv[1] + "/*.jsonl"):
    with open(path) as log:
        for line in log:
            if needle in line:
                record = json.loads(line)
                if record.get("nodeid") == nodeid:
                    found.append((record["start"], path, record["outcome"]))
for row in sorted(found, reverse=True)[:50]:
    print(*row)
"""


def nodeids(tests: int) -> list[str]:
    return [f"tests/api/test_{n // 100:03d}.py::test_case_{n % 100}[{n % 7}]" for n in range(tests)]


def outcome(rng: random.Random) -> str:
    roll = rng.random()
    return "failed" if roll < 0.01 else "skipped" if roll < 0.05 else "passed"


def build(work: Path, runs: int, tests: int) -> tuple[Path, Path]:
    """The store and the report-log directory, holding the same results."""
    from testmem.memory.log import rows_to_table
    from testmem.memory.store import Store

    store, logs = Store(work / "store"), work / "reportlog"
    logs.mkdir()
    rng, ids = random.Random(7), nodeids(tests)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    for r in range(runs):
        run_id, at = uuid7(), first + timedelta(hours=6 * r)
        results = [(nodeid, outcome(rng), 0.001 + rng.random() / 100) for nodeid in ids]
        rows = _rows(run_id, at, results)
        store.events.append_table(rows_to_table(rows))
        _write_reportlog(logs / f"run-{r:05d}.jsonl", at, results)
    return store.root, logs


def _rows(run_id: str, at: datetime, results: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    envelope = {"run_id": run_id, "schema_version": 1, "producer": "bench"}
    started = {**envelope, "event_id": uuid7(), "type": "RunStarted", "occurred_at": at}
    rows = [{**started, "build": f"build-{run_id[:8]}", "branch": "main", "day": _day(at)}]
    for n, (nodeid, result, duration) in enumerate(results):
        when = at + timedelta(milliseconds=5 * n)
        file, _, function = nodeid.partition("::")
        rows.append(
            {**envelope, "event_id": uuid7(), "type": "TestFinished", "occurred_at": when,
             "nodeid": nodeid, "file": file, "function": function.split("[")[0],
             "outcome": result, "phase": "call", "duration_s": duration, "attempt": 1,
             "day": _day(when)}
        )  # fmt: skip
    end = at + timedelta(milliseconds=5 * len(results))
    counts = {k: sum(1 for r in results if r[1] == k) for k in ("passed", "failed", "skipped")}
    rows.append(
        {**envelope, "event_id": uuid7(), "type": "RunFinished", "occurred_at": end,
         "exit_status": 1 if counts["failed"] else 0, "day": _day(end), **counts}
    )  # fmt: skip
    return rows


def _day(at: datetime) -> str:
    return at.strftime("%Y-%m-%d")


def _write_reportlog(path: Path, at: datetime, results: list[tuple[str, str, float]]) -> None:
    """What pytest-reportlog writes, minus the setup and teardown lines (which
    would only make the alternative slower)."""
    with open(path, "w") as out:
        out.write(json.dumps({"pytest_version": "9.2.0", "$report_type": "SessionStart",
                              "start": at.timestamp()}) + "\n")  # fmt: skip
        for n, (nodeid, result, duration) in enumerate(results):
            start = at.timestamp() + 0.005 * n
            file, _, name = nodeid.partition("::")
            record = {
                "nodeid": nodeid, "location": [file, 10 + n % 90, name],
                "keywords": {name: 1, file.rsplit("/", 1)[-1]: 1, "api": 1},
                "outcome": result, "longrepr": "AssertionError" if result == "failed" else None,
                "when": "call", "user_properties": [], "sections": [], "duration": duration,
                "start": start, "stop": start + duration, "$report_type": "TestReport",
            }  # fmt: skip
            out.write(json.dumps(record) + "\n")
        out.write(json.dumps({"exitstatus": 1, "$report_type": "SessionFinish"}) + "\n")


def commands(store: Path, logs: Path, nodeid: str) -> dict[str, tuple[list[str], tuple[int, ...]]]:
    at = ["--dir", str(store)]
    return {
        "`testmem runs`": ([*TESTMEM, *at, "runs"], (0,)),
        "script over report logs: runs": ([PYTHON, "-c", RUNS_SCRIPT, str(logs)], (0,)),
        "`testmem history NODEID`": ([*TESTMEM, *at, "history", nodeid], (0,)),
        "script over report logs: history": (
            [PYTHON, "-c", HISTORY_SCRIPT, str(logs), nodeid],
            (0,),
        ),
        "`grep -rhF NODEID` over report logs": (
            ["grep", "-rhF", json.dumps(nodeid), str(logs)],
            (0,),
        ),
    }


def measure(store: Path, logs: Path, nodeid: str, repeats: int) -> dict[str, list[Timing]]:
    runs = commands(store, logs, nodeid)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    timings: dict[str, list[Timing]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (command, ok) in runs.items():
            timings[name].append(timed(command, env=env, ok=ok))
    return timings


def report(timings: dict[str, list[Timing]]) -> str:
    rows = [
        [name, f"{median([t.wall_s for t in ts]):.2f}", f"{median([t.cpu_s for t in ts]):.2f}"]
        for name, ts in timings.items()
    ]
    return table(["cold process", "wall s (median)", "CPU s (median)"], rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from testmem.memory.store import Store

    with tempfile.TemporaryDirectory(prefix="testmem-query-") as tmp:
        store, logs = build(Path(tmp), args.runs, args.tests)
        nodeid = nodeids(args.tests)[args.tests // 2]
        events = Store(store).events
        sections = []
        for state in ("as recorded", "after `testmem compact`"):
            if state != "as recorded":
                events.compact(vacuum_hours=0)
            timings = measure(store, logs, nodeid, args.repeats)
            files = len(events.files())
            sections.append(f"Store {state} ({files} Parquet files):\n\n{report(timings)}")
    text = (
        f"Cold queries, {args.runs * args.tests:,} results ({args.runs} runs x {args.tests} "
        f"tests), median of {args.repeats}:\n\n" + "\n\n".join(sections)
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
