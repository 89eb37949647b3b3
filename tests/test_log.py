"""The event log: atomic batches, concurrent writers, compaction without duplicates."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testmem.memory.cli import cli
from testmem.memory.errors import StoreError
from testmem.memory.events import (
    Blob,
    Fact,
    HttpExchanged,
    TestFinished,
    arrow_schema,
    from_row,
    to_row,
    to_table,
    uuid7,
)
from testmem.memory.log import EventLog, EventWriter
from testmem.memory.query import History
from testmem.memory.store import Store


def results(run_id: str, count: int, prefix: str = "t") -> list[TestFinished]:
    return [
        TestFinished(run_id=run_id, nodeid=f"tests/test_x.py::{prefix}{i}") for i in range(count)
    ]


def event_ids(root: Path) -> list[str]:
    return [row[0] for row in History(Store.open(root)).sql("SELECT event_id FROM events").rows]


def test_an_append_is_one_commit_readable_back_as_the_same_events(store_dir):
    log = Store(store_dir).events
    written = [
        *results("r1", 3),
        HttpExchanged(run_id="r1", exchange_id="x1", response_body=Blob.of(b"\xff\x00")),
        Fact.of("DecisionMade", "r1", nodeid="n", action="retry", confidence=0.9),
    ]
    log.append(written)
    assert log.version() == 0
    table = _read_table(log)
    read = [from_row(row) for row in table.to_pylist()]
    assert sorted(read, key=lambda e: e.event_id) == sorted(written, key=lambda e: e.event_id)


def _read_table(log: EventLog):
    from deltalake import DeltaTable

    return DeltaTable(str(log.path)).to_pyarrow_table()


def test_a_batch_across_midnight_is_one_commit_of_one_file_per_day(store_dir):
    from datetime import UTC, datetime, timedelta, timezone

    log = Store(store_dir).events
    late = datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)
    written = [
        TestFinished(run_id="r", nodeid="a", occurred_at=late),
        TestFinished(run_id="r", nodeid="b", occurred_at=late + timedelta(seconds=2)),
        # the same UTC day as "a", written in another time zone
        TestFinished(
            run_id="r", nodeid="c", occurred_at=late.astimezone(timezone(timedelta(hours=5)))
        ),
    ]
    log.append(written)
    assert log.version() == 0
    assert sorted(f.split("/")[-2] for f in log.files()) == ["day=2026-11-28", "day=2026-11-29"]
    days = {r["nodeid"]: r["day"] for r in _read_table(log).to_pylist()}
    assert days == {"a": "2026-11-28", "b": "2026-11-29", "c": "2026-11-28"}


def test_a_batch_across_midnight_keeps_every_instant_to_the_microsecond(store_dir):
    from datetime import UTC, datetime, timedelta, timezone

    late = datetime(2026, 11, 28, 23, 59, 59, 999_999, tzinfo=UTC)
    moments = {
        "a": late,
        "b": late + timedelta(microseconds=1),
        "c": (late - timedelta(days=400)).astimezone(timezone(timedelta(hours=-7))),
        "naive": datetime(2026, 11, 28, 12, 0, 0, 1),  # counts as UTC, as Arrow reads it
    }
    log = Store(store_dir).events
    log.append([TestFinished(run_id="r", nodeid=n, occurred_at=t) for n, t in moments.items()])
    rows = {r["nodeid"]: r for r in _read_table(log).to_pylist()}
    assert {n: r["occurred_at"] for n, r in rows.items()} == {
        "a": late,
        "b": late + timedelta(microseconds=1),
        "c": late - timedelta(days=400),
        "naive": datetime(2026, 11, 28, 12, 0, 0, 1, tzinfo=UTC),
    }
    assert {n: r["day"] for n, r in rows.items()} == {
        "a": "2026-11-28", "b": "2026-11-29", "c": "2025-10-24", "naive": "2026-11-28"
    }  # fmt: skip


def test_a_table_of_events_holds_the_rows_of_the_events():
    """`to_table`, the recorder's fast path, against `to_row`, one event at a time."""
    from datetime import timedelta, timezone

    events = [
        *results("r", 2),
        TestFinished(
            run_id="r", nodeid="t::p", params='{"x": "1"}', markers=["slow"], worker="gw1"
        ),
        HttpExchanged(run_id="r", exchange_id="x1", status=503, response_body=Blob.of(b"\xff")),
        Fact.of("DecisionMade", "r", nodeid="t::p", action="retry"),
        Fact.of("FailureLinked", "r", failure_id="f"),
        TestFinished(
            run_id="r",
            nodeid="t::z",
            occurred_at=results("r", 1)[0].occurred_at.astimezone(timezone(timedelta(hours=9))),
        ),
    ]
    table = to_table(events)
    assert table.schema == arrow_schema()
    by_id = {row["event_id"]: row for row in table.to_pylist()}
    names = arrow_schema().names  # to_row leaves out the columns of other types
    assert by_id == {e.event_id: {n: to_row(e).get(n) for n in names} for e in events}


def test_the_log_takes_a_checkpoint_every_ten_commits(store_dir):
    """Each commit replays the commits since the last checkpoint: few stay cheap."""
    log = Store(store_dir).events
    for i in range(10):
        log.append(results("r", 1, prefix=f"b{i}-"))
    checkpoints = sorted(p.name for p in (log.path / "_delta_log").glob("*.checkpoint.parquet"))
    assert checkpoints == [f"{9:020d}.checkpoint.parquet"]


def test_a_log_made_with_deltas_default_checkpoints_takes_them_every_ten_too(store_dir):
    from deltalake import DeltaTable, write_deltalake

    log = Store(store_dir).events
    write_deltalake(str(log.path), to_table(results("old", 1)), partition_by=["day"])
    log.append(results("r", 1))
    configuration = DeltaTable(str(log.path)).metadata().configuration
    assert configuration["delta.checkpointInterval"] == "10"
    assert len(event_ids(store_dir)) == 2


def test_rows_round_trip_every_event_type():
    fact = Fact.of("FailureLinked", "r", failure_id="f", incident_id="i", score=0.5)
    for event in (*results("r", 1), fact):
        assert from_row(to_row(event)) == event
    assert from_row(to_row(fact)).data == {"score": 0.5}  # type: ignore[attr-defined]


def test_events_pickle_to_equal_events_of_their_own_type():
    """The recorder pickles events to its store process (values in field order)."""
    events = [
        *results("r", 1),
        HttpExchanged(run_id="r", exchange_id="x", response_body=Blob.of(b"\xff\x00")),
        Fact.of("DecisionMade", "r", nodeid="n", action="retry", confidence=0.9),
    ]
    copies = pickle.loads(pickle.dumps(events))
    assert copies == events
    assert [type(c) for c in copies] == [type(e) for e in events]


def test_event_ids_are_rfc_9562_uuid7_in_time_order():
    ids = []
    for _ in range(200):
        ids.append(uuid7())
        time.sleep(0.0005)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7}
    assert {u.variant for u in parsed} == {uuid.RFC_4122}
    stamps = [u.int >> 80 for u in parsed]  # unix milliseconds
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time() * 1000) < 5000
    assert len(set(ids)) == len(ids)


def test_the_writer_flushes_by_count(store_dir):
    writer = EventWriter(Store(store_dir).events, batch_size=5, max_age_s=600)
    for event in results("r", 12):
        writer.add(event)
    deadline = time.monotonic() + 30  # full batches are written by the background thread
    while writer.written < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert writer.written == 10  # two full batches, two events still waiting
    writer.close()
    assert writer.written == 12
    assert len(event_ids(store_dir)) == 12


def test_the_writer_flushes_by_age(store_dir):
    writer = EventWriter(Store(store_dir).events, batch_size=1000, max_age_s=0.1)
    writer.add(results("r", 1)[0])
    deadline = time.monotonic() + 10
    while writer.written == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert writer.written == 1
    writer.close()


def test_a_writer_fed_steadily_commits_once_per_age_not_once_per_commit(store_dir):
    log = Store(store_dir).events
    writer = EventWriter(log, batch_size=1000, max_age_s=0.5)
    events = results("r", 300)
    for event in events:  # 1.5 s of a test every 5 ms
        writer.add(event)
        time.sleep(0.005)
    writer.close()
    assert writer.written == 300
    # One commit per half second, and the rest at close: each aged flush takes
    # what waits, not also what arrives while it commits.
    assert (log.version() or 0) + 1 <= 6


def test_a_writer_with_prepare_makes_events_of_its_items_in_batches_on_its_thread(store_dir):
    made = results("r", 12)
    calls: list[tuple[list[int], str]] = []

    def prepare(items: list[int]) -> list[TestFinished]:
        calls.append((items, threading.current_thread().name))
        return [made[i] for i in items if i % 3]  # some items make no event

    writer = EventWriter(Store(store_dir).events, batch_size=5, max_age_s=600, prepare=prepare)
    for i in range(12):
        writer.add(i)
    writer.close()
    assert [i for items, _ in calls for i in items] == list(range(12))  # each once, in order
    assert len(calls) < 12 and {thread for _, thread in calls} == {"testmem-writer"}
    kept = [e.event_id for i, e in enumerate(made) if i % 3]
    assert writer.written == len(kept) == 8  # events, not items
    assert sorted(event_ids(store_dir)) == sorted(kept)


class _Gated:
    """A real log whose appends wait until the test opens the gate."""

    def __init__(self, log: EventLog) -> None:
        self.log, self.gate = log, threading.Event()

    def warm_up(self) -> None:
        self.log.warm_up()

    def append(self, events: Any) -> None:
        self.gate.wait(30)
        self.log.append(events)

    def close(self) -> None:
        self.log.close()


def test_finish_leaves_the_last_commit_to_the_writer_thread_and_close_waits_for_it(store_dir):
    gated = _Gated(Store(store_dir).events)
    writer = EventWriter(gated, batch_size=1000, max_age_s=600)
    for event in results("r", 7):
        writer.add(event)
    writer.finish()  # returns while the commit waits at the gate
    assert writer.written == 0
    gated.gate.set()
    writer.close()
    assert writer.written == 7
    assert len(event_ids(store_dir)) == 7


def test_a_writer_that_cannot_write_reports_once_per_batch_and_never_raises(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    errors: list[tuple[StoreError, int]] = []
    writer = EventWriter(
        EventLog(blocker / "events"), batch_size=3, on_error=lambda e, n: errors.append((e, n))
    )
    for event in results("r", 4):
        writer.add(event)
    writer.close()
    assert writer.lost == 4 and writer.written == 0
    assert [n for _, n in errors] == [3, 1]


def _append_batches(root: str, writer: int, batches: int, size: int, start: Any = None) -> None:
    import deltalake  # noqa: F401  (imported before the start line, so writers really race)

    if start is not None:
        start.wait()
    log = EventLog(Path(root) / "events")
    for batch in range(batches):
        log.append(results(f"run-{writer}", size, prefix=f"b{batch}-"))


def test_four_processes_creating_and_appending_at_once_lose_and_duplicate_nothing(store_dir):
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(4)
    writers = [
        spawn.Process(target=_append_batches, args=(str(store_dir), w, 6, 25, start))
        for w in range(4)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
    assert [p.exitcode for p in writers] == [0, 0, 0, 0]
    ids = event_ids(store_dir)
    assert len(ids) == len(set(ids)) == 4 * 6 * 25
    per_run = History(Store.open(store_dir)).sql(
        "SELECT run_id, count(*) FROM events GROUP BY run_id ORDER BY run_id"
    )
    assert per_run.rows == [(f"run-{w}", 150) for w in range(4)]


def test_compact_keeps_exactly_the_same_events(store_dir):
    log = Store(store_dir).events
    for batch in range(12):
        log.append(results("r", 5, prefix=f"b{batch}-"))
    before = Counter(event_ids(store_dir))
    result = CliRunner().invoke(cli, ["--dir", str(store_dir), "compact"])
    assert result.exit_code == 0, result.output
    assert "compacted 12 files into 1" in result.output
    assert Counter(event_ids(store_dir)) == before
    assert len(log.files()) == 1


def test_a_reader_that_listed_files_before_compaction_sees_no_duplicates(store_dir):
    log = Store(store_dir).events
    for batch in range(6):
        log.append(results("r", 5, prefix=f"b{batch}-"))
    reader = History(Store.open(store_dir))
    log.compact()
    counted = reader.sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows
    assert counted == [(30, 30)]
    assert History(Store.open(store_dir)).sql("SELECT count(*) FROM events").rows == [(30,)]


def test_compaction_while_others_append_loses_nothing(store_dir):
    log = Store(store_dir).events
    log.append(results("seed", 5))
    spawn = multiprocessing.get_context("spawn")
    writers = [
        spawn.Process(target=_append_batches, args=(str(store_dir), w, 8, 10)) for w in range(2)
    ]
    for process in writers:
        process.start()
    while any(p.is_alive() for p in writers):
        log.compact()
    for process in writers:
        process.join(timeout=120)
    log.compact()
    ids = event_ids(store_dir)
    assert len(ids) == len(set(ids)) == 5 + 2 * 8 * 10


def test_compacting_a_missing_log_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no event log"):
        EventLog(tmp_path / "nothing").compact()


def test_one_log_commits_many_batches_in_a_row(store_dir):
    """One EventLog reuses its table object from commit to commit: every
    batch still lands, once, at the next version."""
    log = Store(store_dir).events
    for i in range(40):
        log.append(results("r", 1, prefix=f"b{i}-"))
    assert log.version() == 39
    assert len(event_ids(store_dir)) == 40
