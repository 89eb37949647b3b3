"""Append throughput: events/s into the Delta log, against plain alternatives.

The same events (mostly test results, some HTTP exchanges and failures, as
a recorded run holds them) are written in batches by:

- ``EventLog.append``: event objects to an Arrow table, one Delta commit per
  batch (what the recorder does);
- JSON lines, one ``json.dumps`` per event appended to a file (what
  pytest-reportlog does);
- ``deltalake.write_deltalake`` of each batch's table (the same conversion,
  deltalake's own Parquet writer; testmem's writer before it wrote the files
  with pyarrow and only committed them with deltalake);
- ``pyarrow.parquet.write_table``, one plain Parquet file per batch (no Delta
  log, so no atomic commits and no concurrent writers).

    python -m bench.append --events 200000 --batch 10000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import Timing, median, table
from testmem.memory.events import (
    Blob,
    Event,
    FailureObserved,
    HttpExchanged,
    TestFinished,
    uuid7,
)
from testmem.memory.log import events_to_table

# A writer gets the batches of events, and the same batches already as Arrow tables.
Writer = Callable[[Path, Sequence[Sequence[Event]], Sequence[Any]], None]


def sample_events(count: int, run_id: str) -> list[Event]:
    """A run's worth of events: 80 % results, 18 % exchanges, 2 % failures."""
    events: list[Event] = []
    for n in range(count):
        nodeid = f"tests/test_api_{n % 40:02d}.py::test_case_{n % 997}"
        kind = n % 50
        if kind < 40:
            events.append(
                TestFinished(
                    run_id=run_id, nodeid=nodeid, file=nodeid.split("::")[0],
                    function=f"test_case_{n % 997}", markers=["api"],
                    outcome="failed" if kind == 0 else "passed", duration_s=0.001 * (n % 17),
                )
            )  # fmt: skip
        elif kind < 49:
            events.append(
                HttpExchanged(
                    run_id=run_id, exchange_id=uuid7(), nodeid=nodeid, phase="call",
                    url=f"http://127.0.0.1:8000/users/{n}", route="/users/{id}", status=200,
                    request_headers='{"accept": "application/json"}',
                    response_headers='{"content-type": "application/json"}',
                    response_body=Blob.of(f'{{"id": {n}, "name": "user {n}"}}'),
                    duration_s=0.002,
                )
            )  # fmt: skip
        else:
            events.append(
                FailureObserved(
                    run_id=run_id, failure_id=uuid7(), nodeid=nodeid,
                    exception_type="AssertionError", message=f"assert {n} == 200",
                    assertion=f"assert {n} == 200", crash_path=nodeid.split("::")[0],
                    crash_line=12, traceback=Blob.of(f"Traceback ...\nAssertionError: {n}"),
                )
            )  # fmt: skip
    return events


def write_delta(target: Path, batches: Sequence[Sequence[Event]], tables: Sequence[Any]) -> None:
    from testmem.memory.log import EventLog

    log = EventLog(target)
    for batch in batches:
        log.append(batch)


def write_jsonl(target: Path, batches: Sequence[Sequence[Event]], tables: Sequence[Any]) -> None:
    with open(target, "a", encoding="utf-8") as out:
        for batch in batches:
            for event in batch:
                record = {"type": event.TYPE, **vars(event)}
                out.write(json.dumps(record, default=_plain) + "\n")
            out.flush()


def write_deltalake(
    target: Path, batches: Sequence[Sequence[Event]], tables: Sequence[Any]
) -> None:
    from deltalake import WriterProperties, write_deltalake

    for batch in batches:
        write_deltalake(
            str(target),
            events_to_table(batch),
            mode="append",
            partition_by=["day"],
            writer_properties=WriterProperties(compression="ZSTD"),
        )


def write_parquet(target: Path, batches: Sequence[Sequence[Event]], tables: Sequence[Any]) -> None:
    import pyarrow.parquet as pq

    target.mkdir()
    for n, batch in enumerate(batches):  # the same conversion as the log's
        table = events_to_table(batch)
        pq.write_table(table, target / f"{n}.parquet", compression="zstd")


def write_delta_tables(
    target: Path, batches: Sequence[Sequence[Event]], tables: Sequence[Any]
) -> None:
    """The log's own write, from Arrow tables built beforehand (no conversion)."""
    from testmem.memory.log import EventLog

    log = EventLog(target)
    for batch_table in tables:
        log.append_table(batch_table)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Blob):
        return dataclasses.asdict(value)
    return str(value)


WRITERS: dict[str, Writer] = {
    "testmem `EventLog.append` (Delta commit per batch)": write_delta,
    "JSON lines (like pytest-reportlog)": write_jsonl,
    "`deltalake.write_deltalake` per batch": write_deltalake,
    "`pyarrow.parquet.write_table` (no Delta)": write_parquet,
    "testmem `EventLog.append_table`, tables built beforehand": write_delta_tables,
}


def measure(events: list[Event], batch: int, repeats: int) -> dict[str, list[Timing]]:
    """Timings per writer and repetition, writers interleaved, each into a fresh place.
    CPU time counts every thread of the process (Delta's writer has its own)."""
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    seconds: dict[str, list[Timing]] = {name: [] for name in WRITERS}
    with tempfile.TemporaryDirectory(prefix="testmem-append-") as tmp:
        tables = [events_to_table(b) for b in batches]  # also imports pyarrow, deltalake
        write_delta(Path(tmp) / "warm-up", batches[:1], tables[:1])
        for r in range(repeats):
            for k, (name, write) in enumerate(WRITERS.items()):
                wall, cpu = time.perf_counter(), time.process_time()
                write(Path(tmp) / f"{r}-{k}", batches, tables)
                seconds[name].append(Timing(time.perf_counter() - wall, time.process_time() - cpu))
    return seconds


def report(timings: dict[str, list[Timing]], count: int) -> str:
    ours = timings[next(iter(WRITERS))]
    our_wall, our_cpu = median([t.wall_s for t in ours]), median([t.cpu_s for t in ours])
    rows = []
    for name, runs in timings.items():
        wall, cpu = median([t.wall_s for t in runs]), median([t.cpu_s for t in runs])
        rows.append(
            [name, f"{count / wall:,.0f}", f"{wall / our_wall:.2f}",
             f"{count / cpu:,.0f}", f"{cpu / our_cpu:.2f}"]
        )  # fmt: skip
    header = ["writer", "events/s wall", "wall vs testmem", "events/CPU-s", "CPU vs testmem"]
    return table(header, rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    events = sample_events(args.events, uuid7())
    seconds = measure(events, args.batch, args.repeats)
    text = (
        f"Append throughput, {args.events:,} events in batches of {args.batch:,}, "
        f"{args.repeats} interleaved repetitions:\n\n{report(seconds, args.events)}"
    )
    print(text)
    return text


if __name__ == "__main__":
    main()
