"""One contract every store backend passes: a local directory and an S3 bucket.

The S3 store is a real SeaweedFS (two gateways on one filer, `tests.servers`),
read and written through deltalake and obstore exactly as a CI runner would.
Writers in other processes are started with ``spawn`` (deltalake's runtime
does not survive a fork).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from testmem.memory.errors import StoreError, TransientStoreError
from testmem.memory.events import Fact, RunStarted, TestFinished
from testmem.memory.query import History
from testmem.memory.store import Store
from tests.servers import S3

WRITERS, BATCHES, PER_BATCH = 4, 8, 5


@pytest.fixture(params=["local", "s3"])
def location(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Where a fresh store lives: a directory, or a prefix of the bucket."""
    monkeypatch.setenv("TESTMEM_CACHE_DIR", str(tmp_path / "cache"))
    if request.param == "local":
        return str(tmp_path / "store")
    server: S3 = request.getfixturevalue("s3")
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://testmem/{request.node.name.replace('[', '-').rstrip(']')}-{time.time_ns()}"


def batch(run: str, n: int) -> list:
    return [
        RunStarted(run_id=run),
        *[TestFinished(run_id=run, nodeid=f"t{n}{i}") for i in range(n)],
    ]


def counts(store: Store) -> tuple[int, int]:
    return History(store).sql("SELECT count(*), count(DISTINCT event_id) FROM events").rows[0]


def test_batches_read_back_whole_and_once(location: str) -> None:
    store = Store(location)
    assert not store.events.exists()
    for n in range(3):
        store.events.append(batch(f"run-{n}", 4))
    reopened = Store.open(location)
    assert counts(reopened) == (15, 15)
    assert {r["run_id"] for r in History(reopened).runs().dicts()} == {"run-0", "run-1", "run-2"}
    assert History(reopened).stats()["log_version"] == 2


def test_a_commit_retried_after_it_landed_is_not_written_twice(location: str) -> None:
    """A commit whose answer was lost (a timeout after the store applied it)
    is retried; the table's app transaction says it landed, so no second copy."""
    store = Store(location)
    store.events.append(batch("first", 1))
    log = store.events
    commit = log._commit

    def lands_then_times_out(*args: object) -> None:
        log._commit = commit  # once
        commit(*args)
        raise TransientStoreError("operation timed out")

    log._commit = lands_then_times_out  # type: ignore[method-assign]
    log.append(batch("second", 3))
    assert counts(Store.open(location)) == (6, 6)
    assert log.retries == 1


def test_a_terminal_commit_error_is_not_retried(location: str) -> None:
    log = Store(location).events
    log.append(batch("first", 1))

    def refuses(*args: object) -> None:
        raise StoreError("permission denied")

    log._commit = refuses  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="permission denied"):
        log.append(batch("second", 1))
    assert log.retries == 0


def _write(location: str, env: dict[str, str], writer: int) -> int:
    os.environ.update(env)
    log = Store(location).events
    for n in range(BATCHES):
        log.append([Fact.of("Noted", run_id=f"w{writer}", n=n) for _ in range(PER_BATCH)])
    return log.retries


def test_writers_in_many_processes_lose_and_double_nothing(location: str, request) -> None:
    """Four processes commit at once (on S3, two through each gateway)."""
    envs = [{}] * WRITERS
    if location.startswith("s3://"):
        server: S3 = request.getfixturevalue("s3")
        envs = [server.env(w % 2) for w in range(WRITERS)]
    Store(location).events.append(batch("created", 0))  # the table exists before the race
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:
        retries = pool.starmap(_write, [(location, envs[w], w) for w in range(WRITERS)])
    total = 1 + WRITERS * BATCHES * PER_BATCH
    assert counts(Store.open(location)) == (total, total)
    assert Store.open(location).events.version() == WRITERS * BATCHES
    print(f"commit retries: {sum(retries)}")


def _increment(location: str, env: dict[str, str], counter: str, rounds: int) -> None:
    os.environ.update(env)
    store = Store(location)
    for _ in range(rounds):
        with store.lock("link", 60, "busy"):
            seen = int(Path(counter).read_text() or 0)
            time.sleep(0.02)  # a read-decide-write that races without the lock
            Path(counter).write_text(str(seen + 1))


def test_a_lock_admits_one_holder_at_a_time(location: str, tmp_path: Path, request) -> None:
    """On S3 the lock is a lease object, held across machines as across processes."""
    env = request.getfixturevalue("s3").env() if location.startswith("s3://") else {}
    counter = tmp_path / "counter"
    counter.write_text("0")
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.starmap(_increment, [(location, env, str(counter), 5)] * 3)
    assert counter.read_text() == "15"


def test_a_held_lock_makes_a_second_holder_wait_then_fail(location: str) -> None:
    first, second = Store(location), Store(location)
    busy = pytest.raises(StoreError, match="run r1 is being triaged")
    with (
        first.lock("triage-r1", 5, "busy"),
        busy,
        second.lock("triage-r1", 0.5, "run r1 is being triaged"),
    ):
        pass
    with second.lock("triage-r1", 0.5, "busy"):  # released: free again
        pass


def test_a_lease_whose_holder_died_is_taken_over(s3: S3, monkeypatch) -> None:
    import json

    import obstore

    from testmem.memory.lease import Lease, object_store

    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = object_store(f"s3://testmem/lease-{time.time_ns()}")
    dead = {"owner": "ci-runner-7:4242:dead", "expires_at": time.time() - 1}
    obstore.put(bucket, "locks/link.lease", json.dumps(dead).encode())
    lease = Lease(bucket, "locks/link.lease")
    assert lease.acquire(timeout_s=2)
    holder = json.loads(bytes(obstore.get(bucket, "locks/link.lease").bytes()))
    assert holder["owner"] == lease.owner
    lease.release()
    with pytest.raises(FileNotFoundError):
        obstore.get(bucket, "locks/link.lease")


def test_a_live_lease_is_renewed_past_its_time_to_live(s3: S3, monkeypatch) -> None:
    from testmem.memory.lease import Lease, object_store

    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = object_store(f"s3://testmem/lease-{time.time_ns()}")
    holder = Lease(bucket, "locks/chroma.lease", ttl_s=0.6)
    assert holder.acquire(timeout_s=1)
    time.sleep(1.5)  # two and a half times its time to live: renewed meanwhile
    assert not Lease(bucket, "locks/chroma.lease", ttl_s=0.6).acquire(timeout_s=0.3)
    holder.release()


def test_a_lease_released_while_another_waits_is_taken_by_it(s3: S3, monkeypatch) -> None:
    """The waiter finds the lease held, then gone before it reads the holder:
    it must take it on its next try, not fail (obstore raises the builtin
    FileNotFoundError for a missing object)."""
    import threading

    from testmem.memory.lease import Lease, object_store

    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    bucket = object_store(f"s3://testmem/lease-{time.time_ns()}")
    holder, waiter = Lease(bucket, "locks/x.lease"), Lease(bucket, "locks/x.lease")
    assert holder.acquire(timeout_s=1)
    read = waiter._read

    def released_before_read():  # the holder releases between the waiter's two requests
        if holder._etag:
            holder.release()
        return read()

    waiter._read = released_before_read  # type: ignore[method-assign]
    done = threading.Thread(target=lambda: waiter.acquire(timeout_s=5))
    done.start()
    done.join()
    assert waiter._etag is not None
    waiter.release()
