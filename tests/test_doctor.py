"""`testmem doctor` finds what is wrong with a store; `--repair` fixes what it can.

Stores are real: a Delta log written by `EventLog.append`, an index built by
`memory.incidents.reindex` with the real model, damage done the way a crash
or a careless hand would do it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from memory.cli import cli
from memory.doctor import examine, orphans
from memory.events import FailureObserved, RunFinished, RunStarted, TestFinished, uuid7
from memory.incidents import reindex
from memory.store import Store

AN_HOUR_AGO = time.time() - 2 * 3600


def record_failing_run(store: Store, messages: list[str]) -> None:
    run_id = uuid7()
    events: list = [RunStarted(run_id=run_id)]
    for n, message in enumerate(messages):
        nodeid = f"tests/test_api.py::test_{n}"
        events += [
            TestFinished(run_id=run_id, nodeid=nodeid, outcome="failed"),
            FailureObserved(
                run_id=run_id,
                failure_id=uuid7(),
                nodeid=nodeid,
                exception_type="AssertionError",
                message=message,
            ),
        ]
    store.events.append([*events, RunFinished(run_id=run_id, failed=len(messages))])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store")
    record_failing_run(store, ["AssertionError: expected status 200, got 404"])
    return store


@pytest.fixture
def indexed(store: Store) -> Store:
    """A store whose failures are linked and indexed (loads the model once per test)."""
    record_failing_run(store, ["AssertionError: response has no key 'email'"])
    reindex(store)
    return store


def doctor(store: Store, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dir", str(store.root), "doctor", *args])


def plant_orphan(store: Store, age_s: float = 2 * 3600) -> Path:
    """A Parquet file a writer wrote but never committed (killed in between)."""
    live = Path(store.events.files()[0].removeprefix("file://"))
    orphan = live.with_name("part-00000-orphan-c000.zstd.parquet")
    shutil.copy(live, orphan)
    os.utime(orphan, (time.time() - age_s, time.time() - age_s))
    return orphan


def test_a_fresh_store_is_healthy(store: Store) -> None:
    result = doctor(store)
    assert result.exit_code == 0, result.output
    assert all(f.ok for f in examine(store))


def test_an_old_uncommitted_file_is_an_orphan_and_repair_removes_it(store: Store) -> None:
    orphan = plant_orphan(store)
    assert doctor(store).exit_code == 1
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "removed 1 orphan files" in result.output
    assert not orphan.exists() and store.events.files()  # the live file stays


def test_a_young_uncommitted_file_may_be_a_commit_in_flight(store: Store) -> None:
    plant_orphan(store, age_s=10)
    assert orphans(store) == []
    assert doctor(store).exit_code == 0


def test_a_stray_temp_file_is_reported(store: Store) -> None:
    temp = store.events.path / "_delta_log" / "_commit_1234.json.tmp"
    temp.write_text("{")
    os.utime(temp, (AN_HOUR_AGO, AN_HOUR_AGO))
    assert [p.name for p in orphans(store)] == [temp.name]
    assert doctor(store, "--repair").exit_code == 0 and not temp.exists()


def test_a_missing_snapshot_file_makes_the_log_unhealthy(store: Store) -> None:
    Path(store.events.files()[0].removeprefix("file://")).unlink()
    result = doctor(store)
    assert result.exit_code == 1
    assert "missing file of the snapshot" in result.output


def test_a_truncated_snapshot_file_makes_the_log_unhealthy(store: Store) -> None:
    live = Path(store.events.files()[0].removeprefix("file://"))
    live.write_bytes(live.read_bytes()[:100])
    findings = {f.check: f for f in examine(store)}
    assert not findings["log"].ok and "unreadable file" in findings["log"].problems[0]


def test_pending_defects_are_reported_and_left_to_the_defect_agent(store: Store) -> None:
    outbox = store.subdir("defects") / "outbox"
    outbox.mkdir()
    (outbox / "create-DEF-1.json").write_text(json.dumps({"action": "create"}))
    result = doctor(store, "--repair")
    assert result.exit_code == 1
    assert "testmem defects flush" in result.output
    assert (outbox / "create-DEF-1.json").exists()


def test_linked_failures_without_an_index_are_reported_and_reindexed(indexed: Store) -> None:
    shutil.rmtree(indexed.root / "chroma")
    result = doctor(indexed, "--json")
    assert result.exit_code == 1
    index = next(c for c in json.loads(result.output)["checks"] if c["check"] == "index")
    assert index["problems"] == ["2 linked signatures missing from the index"]
    result = doctor(indexed, "--repair")
    assert result.exit_code == 0, result.output
    assert "rebuilt the index: 2 signatures" in result.output


def test_an_index_record_unknown_to_the_log_is_reported(indexed: Store) -> None:
    from memory.index import SignatureIndex

    index = SignatureIndex(indexed)
    known = next(iter(index.records()))
    vector = index.vectors([known])[known]
    index._open().add(ids=["not-in-the-log"], embeddings=[vector], metadatas=[{"count": 1}])
    problems = {f.check: f.problems for f in examine(indexed)}["index"]
    assert problems == ["1 indexed signatures unknown to the log"]


def test_doctor_on_no_store_is_a_usage_error(tmp_path: Path) -> None:
    result = doctor(Store(tmp_path / "none"))
    assert result.exit_code == 2 and "no testmem store" in result.output


def test_checkpoints_are_never_taken_for_orphans(store: Store) -> None:
    from deltalake import DeltaTable

    DeltaTable(str(store.events.path)).create_checkpoint()
    checkpoints = list((store.events.path / "_delta_log").glob("*.checkpoint.parquet"))
    for path in checkpoints:
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    assert checkpoints and orphans(store, vacuum_hours=0) == []
    assert doctor(store, "--repair", "--vacuum-hours", "0").exit_code == 0
    assert all(p.exists() for p in checkpoints) and store.events.files()
