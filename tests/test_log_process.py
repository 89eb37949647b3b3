"""The recorder's writer process: batches cross a pipe, errors come back."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from memory.errors import StoreError
from memory.events import TestFinished
from memory.log import EventWriter
from memory.log_process import ProcessLog
from memory.query import History
from memory.store import Store


def results(count: int) -> list[TestFinished]:
    return [TestFinished(run_id="r", nodeid=f"tests/test_x.py::t{i}") for i in range(count)]


def test_batches_appended_by_the_child_read_back_exactly(store_dir: Path) -> None:
    log = ProcessLog(Store(store_dir).events.path)
    sent = results(5)
    log.append(sent[:2])
    log.append(sent[2:])
    log.close()
    rows = History(Store.open(store_dir)).sql("SELECT event_id FROM events").rows
    assert sorted(r[0] for r in rows) == sorted(e.event_id for e in sent)
    assert Store(store_dir).events.version() == 1  # two appends, two commits


def test_the_childs_store_error_reaches_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    log = ProcessLog(blocker / "events")
    with pytest.raises(StoreError, match=r"cannot append to .*a-file/events"):
        log.append(results(1))
    log.append([])  # nothing to do: no round trip
    log.close()


def test_a_dead_child_loses_its_batches_as_store_errors(store_dir: Path) -> None:
    log = ProcessLog(Store(store_dir).events.path)
    log.warm_up()
    assert log._child is not None
    log._child.send_signal(signal.SIGKILL)
    log._child.wait()
    errors: list[tuple[StoreError, int]] = []
    writer = EventWriter(log, batch_size=3, on_error=lambda e, n: errors.append((e, n)))
    for event in results(4):
        writer.add(event)
    writer.close()
    assert (writer.written, writer.lost) == (0, 4)
    assert [n for _, n in errors] == [3, 1]
    assert "the writer process ended (exit -9)" in str(errors[0][0])
