"""JUnit import speed: `testmem.memory.junit.import_junit` (streaming iterparse, Arrow
columns built directly, one commit) against the naive way (parse the whole
tree, build event objects, `EventLog.append`), on the same files, one run.

    python -m bench.junit_speed            # 4 files x 50,000 test cases
"""

from __future__ import annotations

import argparse
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from bench import table
from testmem.memory.events import (
    Blob,
    Event,
    FailureObserved,
    RunFinished,
    RunStarted,
    TestFinished,
)
from testmem.memory.junit import import_junit, run_id_of
from testmem.memory.redact import DEFAULT_REDACTOR
from testmem.memory.store import Store


def write_report(path: Path, cases: int, seed: int) -> None:
    """A Surefire-like report: 2 % failures with a stack trace, 3 % skipped."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<testsuites>"]
    for suite in range(0, cases, 500):
        lines.append(
            f'<testsuite name="com.shop.Suite{suite}" timestamp="2026-11-{1 + seed:02d}T10:00:00" '
            f'tests="500" time="12.5" hostname="ci">'
        )
        for i in range(suite, min(suite + 500, cases)):
            lines.append(
                f'<testcase classname="com.shop.Suite{suite}" name="case_{i}_{seed}" time="0.025"'
            )
            if i % 50 == 7:
                lines.append(
                    '><failure message="expected: &lt;200&gt; but was: &lt;503&gt;" '
                    'type="AssertionError">'
                    f"AssertionError at com.shop.Suite{suite}.case_{i}(Suite.java:{i % 300})\n"
                    "\tat org.junit.Assert.fail(Assert.java:89)</failure></testcase>"
                )
            elif i % 33 == 5:
                lines.append("><skipped/></testcase>")
            else:
                lines.append("/>")
        lines.append("</testsuite>")
    lines.append("</testsuites>")
    path.write_text("\n".join(lines), encoding="utf-8")


def naive_import(store: Store, paths: list[Path]) -> int:
    """What one would write first: whole tree in memory, one object per event."""
    events: list[Event] = []
    for path in paths:
        run_id = run_id_of(path.read_bytes())
        events.append(RunStarted(run_id=run_id))
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for case in ET.parse(path).getroot().iter("testcase"):
            nodeid = f"{case.get('classname')}::{case.get('name')}"
            failure, skipped = case.find("failure"), case.find("skipped")
            outcome = (
                "failed" if failure is not None else "skipped" if skipped is not None else "passed"
            )
            counts[outcome] += 1
            events.append(
                TestFinished(
                    run_id=run_id,
                    nodeid=nodeid,
                    outcome=outcome,
                    duration_s=float(case.get("time") or 0),
                )
            )
            if failure is not None:
                events.append(
                    FailureObserved(
                        run_id=run_id,
                        failure_id=f"{run_id}-{len(events)}",
                        nodeid=nodeid,
                        exception_type=failure.get("type", ""),
                        message=DEFAULT_REDACTOR.text(failure.get("message", "")),
                        traceback=Blob.of(DEFAULT_REDACTOR.text(failure.text or "")),
                    )
                )
        events.append(
            RunFinished(
                run_id=run_id,
                passed=counts["passed"],
                failed=counts["failed"],
                skipped=counts["skipped"],
            )
        )
    store.events.append(events)
    return sum(1 for e in events if isinstance(e, TestFinished))


def measure(name: str, work: Callable[[Store], int], root: Path) -> tuple[str, int, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    cases = work(Store(root / name))
    return name, cases, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--cases", type=int, default=50_000, help="Test cases per file.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [root / f"TEST-{i}.xml" for i in range(args.files)]
        for i, path in enumerate(paths):
            write_report(path, args.cases, i)
        warm = root / "warm.xml"  # neither side should pay the imports of pyarrow/deltalake/duckdb
        write_report(warm, 100, 99)
        import_junit(Store(root / "warm1"), [warm])
        naive_import(Store(root / "warm2"), [warm])
        rows = [
            measure("testmem import junit", lambda s: import_junit(s, paths).tests, root),
            measure("naive (ET.parse + events + append)", lambda s: naive_import(s, paths), root),
        ]
    fast, naive = rows[0], rows[1]
    print(
        table(
            ["approach", "test cases", "wall s", "CPU s", "cases/s (wall)", "cases/s (CPU)"],
            [
                [n, f"{c:,}", f"{w:.2f}", f"{u:.2f}", f"{c / w:,.0f}", f"{c / u:,.0f}"]
                for n, c, w, u in rows
            ],
        )
    )
    print(f"\nspeed-up (CPU): {naive[3] / fast[3]:.1f}x; (wall): {naive[2] / fast[2]:.1f}x")


if __name__ == "__main__":
    main()
