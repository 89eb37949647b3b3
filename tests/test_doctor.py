"""`testmem doctor` finds what is wrong with a store; `--repair` fixes what it can.

Stores are real: a Delta log written by `EventLog.append`, an index built by
`testmem.memory.incidents.reindex` with the real model, damage done the way a crash
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

from testmem.memory.cli import cli
from testmem.memory.doctor import examine, orphans
from testmem.memory.events import FailureObserved, RunFinished, RunStarted, TestFinished, uuid7
from testmem.memory.incidents import reindex
from testmem.memory.store import Store

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


def test_an_old_uncommitted_file_is_an_orphan_and_repair_moves_it_aside(store: Store) -> None:
    orphan = plant_orphan(store)
    content = orphan.read_bytes()
    assert doctor(store).exit_code == 1
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "moved 1 never-committed data files" in result.output
    assert not orphan.exists() and store.events.files()  # the live file stays
    kept = list((store.root / "doctor").glob(f"orphans-*/*/{orphan.name}"))
    assert [p.read_bytes() for p in kept] == [content]  # never deleted


def test_files_a_compaction_replaced_are_deleted_by_repair(store: Store) -> None:
    for n in range(2):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    before = event_ids(store)
    replaced = [Path(uri.removeprefix("file://")) for uri in store.events.files()]
    store.events.compact(vacuum_hours=24)  # readers' window: the old files stay for now
    assert all(p.exists() for p in replaced)
    result = doctor(store, "--repair", "--vacuum-hours", "0")
    assert result.exit_code == 0, result.output
    assert f"removed {len(replaced)} orphan files" in result.output
    assert not any(p.exists() for p in replaced) and event_ids(store) == before


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
    from testmem.memory.index import SignatureIndex

    index = SignatureIndex(indexed)
    known = next(iter(index.records()))
    vector = index.vectors([known])[known]
    index._open().add(ids=["not-in-the-log"], embeddings=[vector], metadatas=[{"count": 1}])
    problems = {f.check: f.problems for f in examine(indexed)}["index"]
    assert problems == ["1 indexed signatures unknown to the log"]


def test_an_index_record_naming_another_incident_is_reported_and_reindexed(
    indexed: Store,
) -> None:
    """What runs linking at once without a lock left behind: the right
    signatures, filed under an incident the log never gave them."""
    from testmem.memory.index import SignatureIndex

    index = SignatureIndex(indexed)
    signature, record = next(iter(index.records().items()))
    record = {k: v for k, v in record.items() if k != "text"}
    index._open().update(ids=[signature], metadatas=[{**record, "incident_id": "INC-00000000"}])
    problems = {f.check: f.problems for f in examine(indexed)}["index"]
    assert problems == ["1 indexed signatures name another incident than the log"]
    assert doctor(indexed, "--repair").exit_code == 0
    assert {f.check: f.problems for f in examine(indexed)}["index"] == []


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


# -- damage to the Delta log itself ------------------------------------------------


def event_ids(store: Store) -> list[str]:
    from deltalake import DeltaTable

    table = DeltaTable(str(store.events.path)).to_pyarrow_table(columns=["event_id"])
    return sorted(table.column("event_id").to_pylist())


def delta_log(store: Store) -> Path:
    return store.events.path / "_delta_log"


def commit(store: Store, version: int) -> Path:
    return delta_log(store) / f"{version:020d}.json"


@pytest.fixture
def checkpointed(store: Store) -> Store:
    """Six commits, a checkpoint at version 3, two commits after it."""
    from deltalake import DeltaTable

    for n in range(3):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    DeltaTable(str(store.events.path)).create_checkpoint()
    for n in range(2):
        record_failing_run(store, [f"AssertionError: later {n}"])
    assert (delta_log(store) / f"{3:020d}.checkpoint.parquet").exists()
    return store


def test_a_missing_checkpoint_is_rebuilt_from_the_commits(checkpointed: Store) -> None:
    before = event_ids(checkpointed)
    (delta_log(checkpointed) / f"{3:020d}.checkpoint.parquet").unlink()
    result = doctor(checkpointed)
    assert result.exit_code == 1
    assert "_last_checkpoint names checkpoint 3, which is missing" in result.output
    assert "cannot open the event log" in result.output  # deltalake refuses it
    result = doctor(checkpointed, "--repair")
    assert result.exit_code == 0, result.output
    assert "rebuilt the checkpoint at version 5 from the commits" in result.output
    assert event_ids(checkpointed) == before
    assert (delta_log(checkpointed) / f"{5:020d}.checkpoint.parquet").exists()


def test_a_truncated_checkpoint_is_rebuilt_and_kept_aside(checkpointed: Store) -> None:
    before = event_ids(checkpointed)
    checkpoint = delta_log(checkpointed) / f"{3:020d}.checkpoint.parquet"
    damaged = checkpoint.read_bytes()[:200]
    checkpoint.write_bytes(damaged)
    assert "unreadable checkpoint" in doctor(checkpointed).output
    result = doctor(checkpointed, "--repair")
    assert result.exit_code == 0, result.output
    assert event_ids(checkpointed) == before
    kept = list((checkpointed.root / "doctor").glob("damaged-*/*.checkpoint.parquet"))
    assert [p.read_bytes() for p in kept] == [damaged]


def test_an_unreadable_checkpoint_hint_is_rewritten(checkpointed: Store) -> None:
    hint = delta_log(checkpointed) / "_last_checkpoint"
    hint.write_text('{"vers')
    result = doctor(checkpointed)
    assert result.exit_code == 1 and "unreadable _last_checkpoint" in result.output
    assert doctor(checkpointed, "--repair").exit_code == 0
    assert json.loads(hint.read_text())["version"] == 5


def test_a_checkpoint_whose_commits_are_gone_is_left_as_it_was(checkpointed: Store) -> None:
    """Log cleanup removes commits a checkpoint covers: nothing to rebuild it from."""
    commit(checkpointed, 1).unlink()
    checkpoint = delta_log(checkpointed) / f"{3:020d}.checkpoint.parquet"
    checkpoint.write_bytes(b"not parquet")
    files = sorted(p.name for p in delta_log(checkpointed).iterdir())
    result = doctor(checkpointed, "--repair")
    assert result.exit_code == 1
    assert "could not rebuild the checkpoint, left the log as it was" in result.output
    assert sorted(p.name for p in delta_log(checkpointed).iterdir()) == files


def test_a_torn_last_append_keeps_the_events_it_fully_names(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    day = datetime(2026, 1, 5, 12, tzinfo=UTC)
    first = [RunStarted(run_id="r1", occurred_at=day + timedelta(seconds=n)) for n in range(3)]
    second = [RunStarted(run_id="r2", occurred_at=day + timedelta(days=1)) for _ in range(2)]
    before = event_ids(store)
    store.events.append([*first, *second])  # one commit, a data file per day
    last = commit(store, 1)
    lines = last.read_text().splitlines()
    adds = [n for n, line in enumerate(lines) if line.startswith('{"add"')]
    assert len(adds) == 2
    last.write_text("\n".join(lines[: adds[1]]) + "\n" + lines[adds[1]][:60])  # torn in the add
    kept_day = json.loads(lines[adds[0]])["add"]["partitionValues"]["day"]
    result = doctor(store)
    assert result.exit_code == 1 and "commit 1 is unreadable (torn)" in result.output
    result = doctor(store, "--repair", "--vacuum-hours", "0")
    assert "commit 1 was torn: rewrote it, kept 1 data files" in result.output
    # The other day's file is an orphan now, and may be all that is left of its events.
    assert "kept: the log lost events" in result.output
    kept = first if kept_day == "2026-01-05" else second
    assert event_ids(store) == sorted(before + [e.event_id for e in kept])
    assert list((store.root / "doctor").glob("damaged-*/00000000000000000001.json"))


def test_a_torn_compaction_is_undone_without_losing_or_doubling_events(store: Store) -> None:
    for n in range(3):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    before = event_ids(store)
    store.events.compact()
    last = commit(store, store.events.version() or 0)
    assert '"operation":"OPTIMIZE"' in last.read_text()
    last.write_text(last.read_text()[:-150])
    assert doctor(store).exit_code == 1
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "undid it (a OPTIMIZE commit" in result.output
    assert event_ids(store) == before


def test_an_empty_commit_is_reported_and_its_orphans_are_kept(store: Store) -> None:
    record_failing_run(store, ["AssertionError: lost"])
    lost = set(event_ids(store))
    commit(store, 1).write_bytes(b"")  # what a power cut can leave of an unsynced file
    lost -= set(event_ids(store))
    assert lost  # deltalake reads on, without the events
    data = [p for p in store.events.path.rglob("*.parquet") if "_delta_log" not in str(p)]
    for path in data:
        os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    result = doctor(store, "--repair")
    assert result.exit_code == 1
    assert "commit 1 is empty: what it recorded is lost" in result.output
    assert "kept: the log lost events" in result.output
    assert all(p.exists() for p in data)


def test_a_missing_commit_in_the_middle_is_reported_not_repaired(store: Store) -> None:
    for n in range(2):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    commit(store, 1).unlink()
    result = doctor(store, "--repair")
    assert result.exit_code == 1
    assert "commit 1 missing, and no readable checkpoint covers them" in result.output


def test_a_torn_compaction_whose_old_files_are_gone_is_left_as_it_was(store: Store) -> None:
    for n in range(3):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    old = [Path(uri.removeprefix("file://")) for uri in store.events.files()]
    store.events.compact()
    for path in old:  # what a vacuum does to the files a compaction replaced
        path.unlink()
    last = commit(store, store.events.version() or 0)
    torn = last.read_text()[:-150]
    last.write_text(torn)
    result = doctor(store, "--repair")
    assert result.exit_code == 1
    assert "could not undo torn commit 4 (OPTIMIZE): its old files are gone" in result.output
    assert last.read_text() == torn


# -- damage that must not take the store down (issue 18, item 7) -------------------


def test_a_torn_last_append_repaired_twice_deletes_no_intact_file(store: Store) -> None:
    """The add cut off a torn commit leaves an intact orphan: the second
    repair, with the log healthy again, used to vacuum it (3 events gone)."""
    from datetime import UTC, datetime, timedelta

    day = datetime(2026, 1, 5, 12, tzinfo=UTC)
    first = [RunStarted(run_id="r1", occurred_at=day) for _ in range(2)]
    second = [RunStarted(run_id="r2", occurred_at=day + timedelta(days=1)) for _ in range(3)]
    store.events.append([*first, *second])
    last = commit(store, 1)
    lines = last.read_text().splitlines()
    cut = max(n for n, line in enumerate(lines) if line.startswith('{"add"'))
    last.write_text("\n".join(lines[:cut]) + "\n" + lines[cut][:60])
    intact = [p.read_bytes() for p in store.events.path.rglob("*.parquet")]
    for _ in range(2):
        doctor(store, "--repair", "--vacuum-hours", "0")
    everywhere = [
        *store.events.path.rglob("*.parquet"),
        *(store.root / "doctor").rglob("*.parquet"),
    ]
    assert sorted(intact) == sorted(p.read_bytes() for p in everywhere)


def damage_one_data_file(store: Store) -> tuple[Path, bytes]:
    for n in range(2):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    victim = Path(store.events.files()[1].removeprefix("file://"))
    garbage = b"PAR1" + os.urandom(64)
    victim.write_bytes(garbage)
    return victim, garbage


def test_readers_answer_from_the_intact_files_and_name_the_damaged_one(store: Store) -> None:
    from testmem.memory.errors import DamagedFileWarning
    from testmem.memory.query import History

    victim, _ = damage_one_data_file(store)
    history = History(store)
    with pytest.warns(DamagedFileWarning, match=victim.name):
        runs = history.runs().rows
    assert len(runs) == 2 and history.skipped == [str(victim)]
    result = CliRunner().invoke(cli, ["--dir", str(store.root), "runs", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_repair_sets_a_damaged_data_file_aside_and_commits_its_removal(store: Store) -> None:
    victim, garbage = damage_one_data_file(store)
    assert "unreadable file" in doctor(store).output
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "moved 1 damaged data files" in result.output
    assert not victim.exists()
    kept = list((store.root / "doctor").glob(f"damaged-*/{victim.name}"))
    assert [p.read_bytes() for p in kept] == [garbage]
    assert len(event_ids(store)) == 2 * 4  # the two intact runs of four events, whole
    assert all(f.ok for f in examine(store))


def test_garbage_in_a_commit_after_the_checkpoint_is_read_around_then_mended(
    checkpointed: Store,
) -> None:
    from testmem.memory.errors import DamagedFileWarning
    from testmem.memory.query import History

    before = event_ids(checkpointed)
    with commit(checkpointed, 4).open("ab") as file:
        file.write(b"\x00\xffnot json {{\n")
    with pytest.warns(DamagedFileWarning, match="commit 4 does not read"):
        runs = History(Store(checkpointed.root)).runs().rows
    assert len(runs) == 4  # the runs up to version 3
    result = doctor(checkpointed, "--repair")
    assert result.exit_code == 0, result.output
    assert "commit 4 was torn: rewrote it" in result.output
    assert event_ids(checkpointed) == before
