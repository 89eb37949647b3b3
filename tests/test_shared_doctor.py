"""One damaged file never takes a store on S3 down: readers answer from the
intact files and name the damaged one; `testmem doctor --repair` keeps it
aside in the bucket and makes the log whole again (issue 18, item 7). A
damaged checkpoint is rebuilt from the commits, and data files no commit
references (orphans) are found and deleted or kept aside (issue 19).

The store is a real Delta table on SeaweedFS (`tests.servers.seaweedfs`),
damaged the way a crash or a careless hand would, through the S3 API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from testmem.memory.cli import cli
from testmem.memory.doctor import examine
from testmem.memory.errors import DamagedFileWarning
from testmem.memory.lease import object_store
from testmem.memory.query import History
from testmem.memory.store import Store
from tests.servers import S3
from tests.test_doctor import record_failing_run


@pytest.fixture
def store(
    s3: S3, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp_path
) -> Iterator[Store]:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TESTMEM_CACHE_DIR", str(tmp_path / "cache"))
    store = Store(f"s3://testmem/doctor-{request.node.name}")
    for n in range(3):
        record_failing_run(store, [f"AssertionError: expected {n}"])
    yield store


def keys(store: Store, under: str) -> list[str]:
    import obstore

    listed = obstore.list(object_store(store.location), prefix=under)
    return sorted(meta["path"] for batch in listed for meta in batch)


def read(store: Store, key: str) -> bytes:
    import obstore

    return obstore.get(object_store(store.location), key).bytes().to_bytes()


def write(store: Store, key: str, data: bytes) -> None:
    import obstore

    obstore.put(object_store(store.location), key, data)


def event_ids(store: Store) -> list[str]:
    table = Store(store.location).events.dataset().to_table(columns=["event_id"])
    return sorted(table.column("event_id").to_pylist())


def doctor(store: Store, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--dir", store.location, "doctor", *args])


def damage_one_data_file(store: Store) -> tuple[str, bytes]:
    victim = next(k for k in keys(store, "events/") if k.endswith(".parquet"))
    garbage = b"PAR1" + os.urandom(64)
    write(store, victim, garbage)
    return victim, garbage


def test_readers_of_s3_answer_from_the_intact_files_and_name_the_damaged_one(
    store: Store,
) -> None:
    victim, _ = damage_one_data_file(store)
    history = History(Store(store.location))
    with pytest.warns(DamagedFileWarning, match=victim.rsplit("/", 1)[-1]):
        runs = history.runs().rows
    assert len(runs) == 2 and history.skipped == [f"{store.location}/{victim}"]
    result = CliRunner().invoke(cli, ["--dir", store.location, "runs", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 2


def test_repair_on_s3_keeps_a_damaged_data_file_in_the_bucket_and_commits_its_removal(
    store: Store,
) -> None:
    victim, garbage = damage_one_data_file(store)
    assert "unreadable file" in doctor(store).output
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "moved 1 damaged data files" in result.output
    assert victim not in keys(store, "events/")
    kept = [k for k in keys(store, "doctor/") if k.endswith(victim.rsplit("/", 1)[-1])]
    assert [read(store, k) for k in kept] == [garbage]
    assert len(event_ids(store)) == 2 * 4  # the two intact runs of four events, whole
    assert all(f.ok for f in examine(Store(store.location)))


def test_garbage_in_an_s3_commit_after_the_checkpoint_is_read_around_then_mended(
    store: Store,
) -> None:
    from deltalake import DeltaTable

    DeltaTable(store.events.uri).create_checkpoint()  # at version 2
    for n in range(2):
        record_failing_run(store, [f"AssertionError: later {n}"])
    before = event_ids(store)
    victim = f"events/_delta_log/{3:020d}.json"
    original = read(store, victim)
    write(store, victim, original + b"\x00\xffnot json {{\n")
    with pytest.warns(DamagedFileWarning, match="commit 3 does not read"):
        runs = History(Store(store.location)).runs().rows
    assert len(runs) == 3  # the runs up to version 2, the newest that opens
    assert "commit 3 is unreadable (torn)" in doctor(store).output
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "commit 3 was torn: rewrote it, kept 1 data files" in result.output
    assert event_ids(store) == before
    kept = [k for k in keys(store, "doctor/") if k.endswith(f"{3:020d}.json")]
    assert [read(store, k) for k in kept] == [original + b"\x00\xffnot json {{\n"]
    assert all(f.ok for f in examine(Store(store.location)))


def checkpointed(store: Store) -> str:
    """A checkpoint at version 2 and two runs after it; the checkpoint's key."""
    from deltalake import DeltaTable

    DeltaTable(store.events.uri).create_checkpoint()
    for n in range(2):
        record_failing_run(store, [f"AssertionError: later {n}"])
    return f"events/_delta_log/{2:020d}.checkpoint.parquet"


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_damaged_s3_checkpoint_is_reported_and_rebuilt_from_the_commits(
    store: Store, damage: str
) -> None:
    import obstore

    checkpoint = checkpointed(store)
    before = event_ids(store)
    if damage == "garbage":
        write(store, checkpoint, b"PAR1" + os.urandom(64))
    else:
        obstore.delete(object_store(store.location), checkpoint)
    problem = (
        "unreadable checkpoint" if damage == "garbage" else "_last_checkpoint names checkpoint 2"
    )
    assert problem in doctor(store).output
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    assert "rebuilt the checkpoint at version 4 from the commits" in result.output
    assert event_ids(store) == before  # every run readable again, the newest too
    assert len(History(Store(store.location)).runs().rows) == 5
    aside = keys(store, "doctor/")
    assert any(k.endswith("/_last_checkpoint") for k in aside)
    if damage == "garbage":
        assert any(k.endswith(checkpoint.rsplit("/", 1)[-1]) for k in aside)
    assert all(f.ok for f in examine(Store(store.location)))


def test_a_garbage_s3_checkpoint_hint_is_read_around_then_rewritten(store: Store) -> None:
    checkpointed(store)
    write(store, "events/_delta_log/_last_checkpoint", b"{not json")
    assert len(History(Store(store.location)).runs().rows) == 5  # deltalake lists instead
    assert "unreadable _last_checkpoint" in doctor(store).output
    result = doctor(store, "--repair")
    assert result.exit_code == 0, result.output
    hint = json.loads(read(store, "events/_delta_log/_last_checkpoint"))
    assert hint["version"] == 4 and all(f.ok for f in examine(Store(store.location)))


def plant_orphan(store: Store, name: str = "part-00000-orphan-c000.zstd.parquet") -> str:
    """A copy of a live data file that no commit names: a writer that died
    between its PUT and its commit."""
    live = next(
        k for k in keys(store, "events/") if k.endswith(".parquet") and "_delta_log" not in k
    )
    orphan = f"{live.rsplit('/', 1)[0]}/{name}"
    write(store, orphan, read(store, live))
    return orphan


def test_an_uncommitted_s3_data_file_is_an_orphan_and_repair_keeps_it_aside(store: Store) -> None:
    orphan = plant_orphan(store)
    content, before = read(store, orphan), event_ids(store)
    assert doctor(store).exit_code == 0  # younger than the vacuum window: maybe in flight
    result = doctor(store, "--vacuum-hours", "0", "--json")
    found = {c["check"]: c["problems"] for c in json.loads(result.stdout)["checks"]}
    assert result.exit_code == 1 and found["orphans"] == [f"{store.location}/{orphan}"]
    result = doctor(store, "--repair", "--vacuum-hours", "0")
    assert result.exit_code == 0, result.output
    assert "moved 1 never-committed data files" in result.output
    assert orphan not in keys(store, "events/") and event_ids(store) == before
    kept = [k for k in keys(store, "doctor/") if k.endswith(orphan.rsplit("/", 1)[-1])]
    assert [read(store, k) for k in kept] == [content]


def test_s3_files_a_compaction_replaced_are_orphans_that_repair_deletes(store: Store) -> None:
    from deltalake import DeltaTable

    table = DeltaTable(store.events.uri)
    old = {uri.removeprefix(f"{store.location}/") for uri in table.file_uris()}
    table.optimize.compact()
    before = event_ids(store)
    assert set(doctor_orphans(store)) == {f"{store.location}/{k}" for k in old}
    result = doctor(store, "--repair", "--vacuum-hours", "0")
    assert result.exit_code == 0, result.output
    assert f"removed {len(old)} orphan files" in result.output
    assert not old & set(keys(store, "events/")) and event_ids(store) == before
    assert not keys(store, "doctor/")  # nothing set aside: their events live on


def doctor_orphans(store: Store) -> list[str]:
    result = doctor(store, "--vacuum-hours", "0", "--json")
    return {c["check"]: c["problems"] for c in json.loads(result.stdout)["checks"]}["orphans"]
