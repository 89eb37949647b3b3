"""The recorder's store process: batches and history cross a pipe, errors come back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from testmem.memory.errors import StoreError
from testmem.memory.events import RunStarted, TestFinished
from testmem.memory.log import EventWriter
from testmem.memory.query import History
from testmem.memory.store import Store
from testmem.memory.store_process import StoreProcess


def results(count: int, run_id: str = "r", outcome: str = "passed") -> list[TestFinished]:
    return [
        TestFinished(run_id=run_id, nodeid=f"tests/test_x.py::t{i}", outcome=outcome)
        for i in range(count)
    ]


def test_batches_appended_by_the_child_read_back_exactly(store_dir: Path) -> None:
    process = StoreProcess(Store(store_dir))
    sent = results(5)
    process.append(sent[:2])
    process.append(sent[2:])
    process.append([])  # nothing to do: no round trip, no commit
    process.close()
    rows = History(Store.open(store_dir)).sql("SELECT event_id FROM events").rows
    assert sorted(r[0] for r in rows) == sorted(e.event_id for e in sent)
    assert Store(store_dir).events.version() == 1  # two appends, two commits


def three_runs(store: Store) -> None:
    for run, outcome in (("r1", "passed"), ("r2", "failed"), ("r3", "passed")):
        store.events.append([RunStarted(run_id=run), *results(3, run, outcome)])


def by_test(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: r["nodeid"])


def test_the_child_reads_the_history_once_and_keeps_it(store_dir: Path) -> None:
    store = Store(store_dir)
    three_runs(store)
    expected = by_test(History(Store.open(store_dir)).test_records().dicts())
    process = StoreProcess(store, prefetch=True)
    process.warm_up()
    records = by_test(process.test_records())
    process.append(results(3, "r4", "failed"))  # this run's results come later
    assert by_test(process.test_records()) == records == expected
    assert {r["nodeid"]: r["failed_runs"] for r in records} == {
        f"tests/test_x.py::t{i}": 1 for i in range(3)
    }
    process.close()


def test_without_prefetch_the_history_is_read_when_first_asked(store_dir: Path) -> None:
    store = Store(store_dir)
    three_runs(store)
    process = StoreProcess(store)
    process.warm_up()
    process.append(results(3, "r4", "failed"))
    records = process.test_records()
    assert {r["nodeid"]: r["failed_runs"] for r in records} == {
        f"tests/test_x.py::t{i}": 2 for i in range(3)
    }
    process.close()


def test_a_new_store_has_no_history(store_dir: Path) -> None:
    process = StoreProcess(Store(store_dir))
    assert process.test_records() == []
    process.close()


def test_the_childs_store_error_reaches_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    process = StoreProcess(Store(blocker))
    with pytest.raises(StoreError, match=r"cannot append to .*a-file/events"):
        process.append(results(1))
    process.close()


def test_a_dead_child_loses_its_batches_as_store_errors(store_dir: Path) -> None:
    process = StoreProcess(Store(store_dir))
    process.warm_up()
    assert process._child is not None
    process._child.send_signal(signal.SIGKILL)
    process._child.wait()
    errors: list[tuple[StoreError, int]] = []
    writer = EventWriter(process, batch_size=3, on_error=lambda e, n: errors.append((e, n)))
    for event in results(4):
        writer.add(event)
    writer.close()
    assert (writer.written, writer.lost) == (0, 4)
    assert [n for _, n in errors] == [3, 1]
    assert "the store process ended (exit -9)" in str(errors[0][0])
