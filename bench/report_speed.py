"""Report speed over a year of synthetic history (bench/history.py, ~10 M
results, generated once and cached under bench/out/): `testmem report --weeks
52` in each format and `testmem trends`, as a user runs them (fresh processes),
side by side with the naive way to get just the weekly pass rate: read the
result events with pyarrow and count in a Python loop.

    python -m bench.report_speed             # generates bench/out/year first if missing
"""

from __future__ import annotations

import argparse
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import PYTHON, ROOT, table, timed

STORE = ROOT / "bench" / "out" / "year"
CLI = [PYTHON, "-c", "from testmem.agents.cli import main; main()"]


def naive_weekly_pass_rate(root: Path) -> dict[str, float]:
    """Tests executed and passed per ISO week, one row at a time in Python."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from testmem.memory.log import EventLog

    files = [uri.removeprefix("file://") for uri in EventLog(root / "events").files()]
    data = ds.dataset(files, format="parquet")
    columns = ["occurred_at", "outcome", "attempt"]
    tests: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    first_attempts = (pc.field("type") == "TestFinished") & (pc.field("attempt") == 1)
    for batch in data.to_batches(columns=columns, filter=first_attempts):
        for at, outcome in zip(
            batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
        ):
            if outcome == "skipped":
                continue
            year, week, _ = at.astimezone(UTC).isocalendar()
            key = f"{year}-W{week:02d}"
            tests[key] += 1
            passed[key] += outcome in ("passed", "xfailed", "xpassed")
    return {week: passed[week] / tests[week] for week in tests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=STORE)
    args = parser.parse_args()
    if not (args.store / "events" / "_delta_log").is_dir():
        subprocess.run([PYTHON, "-m", "bench.history", str(args.store)], check=True, cwd=ROOT)
    out = args.store.parent / "report"
    rows = []
    for fmt in ("html", "json"):  # md costs the same figures as json
        path = out.with_suffix(f".{fmt}")
        command = [*CLI, "--dir", str(args.store), "report", "--weeks", "52", "--format", fmt]
        timing = timed([*command, "--out", str(path)], cwd=ROOT)
        rows.append(
            [
                f"testmem report --weeks 52 --format {fmt}",
                f"{timing.wall_s:.1f}",
                f"{timing.cpu_s:.1f}",
                f"{path.stat().st_size / 1e6:.2f} MB",
            ]
        )
    timing = timed([*CLI, "--dir", str(args.store), "trends", "--weeks", "52"], cwd=ROOT)
    rows.append(["testmem trends --weeks 52", f"{timing.wall_s:.1f}", f"{timing.cpu_s:.1f}", ""])
    started, cpu = time.perf_counter(), time.process_time()
    weeks = naive_weekly_pass_rate(args.store)
    rows.append(
        [
            f"naive: weekly pass rate only ({len(weeks)} weeks), pyarrow + Python loop",
            f"{time.perf_counter() - started:.1f}",
            f"{time.process_time() - cpu:.1f}",
            "",
        ]
    )
    results = subprocess.run(
        [*CLI, "--dir", str(args.store), "query", "SELECT count(*) FROM results"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()[-1]
    print(f"store: {args.store} ({results} result events), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(table(["command", "wall s", "CPU s", "output"], rows))


if __name__ == "__main__":
    main()
