"""The event log: a Delta Lake table of zstd Parquet files under ``DIR/events``
(or ``s3://BUCKET/PREFIX/events``).

Each `EventLog.append` is one atomic Delta commit, so a reader sees a batch
entirely or not at all, and several processes, on one machine or many, may
append at once: Delta's optimistic concurrency (on object storage, a
conditional put of the next commit file) lets one commit win, and the loser
retries. Every commit carries a Delta app transaction (``txn``: this log
object's id and the batch's number), so a retry first asks the table
whether the batch already landed and never writes it twice. `EventWriter`
buffers events and flushes them in batches by count, by age and on close.
A local log also has a spool (`testmem.memory.spool`): runs the recorder
wrote as JSON, which every reader and writer commits first (`settle`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from testmem.memory.errors import StoreError, TransientStoreError
from testmem.memory.events import Event, arrow_schema, to_table

if TYPE_CHECKING:
    import pyarrow as pa

    from testmem.memory.spool import Segment, Spool

PARTITION_BY = ["day"]
# Opening the table and committing to it replay every commit since the last
# checkpoint: one every 10 commits rather than Delta's 100 keeps a commit near
# 10 ms where it grew to 80 ms, and keeps a reader's open short.
_CHECKPOINTS = {"delta.checkpointInterval": "10"}
# Parquet options that make files cheaper to write and to open: no dictionary
# for the columns whose values are nearly all distinct, statistics only for
# the columns readers filter on, and no copy of the Arrow schema in the footer
# (the Parquet types say the same; the footer is about half as large, and a
# cold query opens hundreds of them).
_DISTINCT = frozenset(
    ["event_id", "occurred_at", "duration_s", "exchange_id", "failure_id", "url", "message",
     "assertion", "request_body", "request_body_sha256", "response_body", "response_body_sha256",
     "traceback", "traceback_sha256"]
)  # fmt: skip
_FILTERED = ["type", "run_id", "occurred_at", "nodeid", "outcome", "failure_id", "incident_id"]
_COMMIT_ATTEMPTS = 12
_FALLBACK_VERSIONS = 20
_COMMIT_KEY = re.compile(r"_delta_log/(\d{20})\.json")
# Commit ids of writers gone for a week are dropped from the table's state.
_SETTINGS = _CHECKPOINTS | {"delta.setTransactionRetentionDuration": "interval 7 days"}


@dataclass(frozen=True)
class CompactionResult:
    files_before: int
    files_after: int
    files_removed: int
    events: int


class EventLog:
    """Append-only access to the Delta table of events, at a path or a URL."""

    def __init__(self, location: Path | str, spool: Spool | None = None) -> None:
        self.spool = spool  # runs recorded but not yet converted (`settle`)
        self.remote = isinstance(location, str) and "://" in location
        self.uri = str(location)
        self.path = Path(location)  # for a remote log, a path that names nothing here
        self._appender: Any = None  # the table, its schema checked; reused by later commits
        self._committing = threading.Lock()
        self._app_id = f"testmem-{uuid.uuid4()}"  # names this writer's commits
        self._batches = itertools.count(1)
        self._objects: Any = None  # the object store a remote log's files go to
        self._known = False
        self.retries = 0  # commits that lost a race and were tried again

    def exists(self) -> bool:
        """Whether there is a log (spooled runs committed first: see `settle`)."""
        self.settle()
        return self._table_exists()

    def _table_exists(self) -> bool:
        if not self.remote:
            return (self.path / "_delta_log").is_dir()
        if not self._known:  # once there, a table stays there
            from deltalake import DeltaTable

            try:
                self._known = DeltaTable.is_deltatable(self.uri)
            except Exception as exc:
                raise _translate(exc, f"cannot reach the event log at {self.uri}") from exc
        return self._known

    def warm_up(self) -> None:
        """Import the writing libraries (~0.5 s), e.g. before the first flush is due."""
        import deltalake  # noqa: F401
        import pyarrow  # noqa: F401

    def close(self) -> None:
        """Nothing to release: an append is complete when it returns."""

    def append(self, events: Sequence[Event]) -> None:
        """Append events as one atomic commit (retried on commit conflicts)."""
        if events:
            self.append_table(events_to_table(events))

    def settle(self) -> None:
        """Commit the spooled segments (`testmem.memory.spool`) in one commit,
        then delete them; each one is committed once, even after a settle
        killed before it could delete them. Every reader and writer settles
        first, so all of them see every recorded run. Trouble is a warning:
        what is committed stays readable."""
        if self.spool is None or not self.spool.segments():
            return
        try:
            with self.spool.settling() as segments:
                fresh = self._uncommitted(segments)
                spooled = self.spool.table(fresh)
                if spooled.num_rows:
                    self._append_table(spooled, [(s.app_id, 1) for s in fresh])
                self.spool.remove(segments)
        except Exception as exc:  # an unreadable segment, a lock held too long...
            import warnings

            from testmem.memory.errors import DamagedFileWarning

            warnings.warn(
                f"spooled events in {self.spool.directory} not committed yet: {exc}",
                DamagedFileWarning,
                stacklevel=3,
            )

    def _uncommitted(self, segments: list[Segment]) -> list[Segment]:
        """The segments no commit marks as landed (by their app transaction)."""
        if not self._table_exists():
            return segments
        table = self._table()
        return [s for s in segments if table.transaction_version(s.app_id) is None]

    def append_table(self, table: pa.Table) -> None:
        """Write ``table`` as Parquet files (one per day), then commit them in
        one Delta transaction: until the commit, no reader sees them.

        pyarrow writes the files, about twice as fast as deltalake's own writer
        and without holding the GIL, so the tests a background flush runs
        beside keep their CPU; deltalake only records the files. A commit that
        fails in a way that may pass (a lost race, a timeout) is retried,
        unless the table says it landed after all; files of a commit that
        never lands are orphans, which `testmem doctor --repair` removes.
        """
        if table.num_rows == 0:
            return
        self.settle()  # spooled runs first, in the order they happened
        self._append_table(table, [(self._app_id, next(self._batches))])

    def _append_table(self, table: pa.Table, commits: list[tuple[str, int]]) -> None:
        """`append_table` as one commit marked with ``commits``: pairs of a
        writer's id and its batch number (Delta app transactions)."""
        try:
            adds = self._write_files(table)
        except Exception as exc:
            raise _translate(exc, f"cannot append to {self.uri}") from exc
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                if attempt == 0 or not self._landed(*commits[0]):
                    self._commit(adds, commits)
                return
            except Exception as exc:  # deltalake raises several unrelated types
                error = _translate(exc, f"cannot append to {self.uri}")
                if not error.transient or attempt == _COMMIT_ATTEMPTS - 1:
                    raise error from exc
                self.retries += 1
                time.sleep(random.uniform(0.01, 0.02 * 2 ** min(attempt, 6)))

    def _landed(self, app_id: str, batch: int) -> bool:
        """Whether writer ``app_id``'s commit number ``batch`` is in the table."""
        if not self._table_exists():
            return False
        found = self._table().transaction_version(app_id)
        return found is not None and found >= batch

    def _write_files(self, table: pa.Table) -> list[Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction

        adds = []
        days = table.column("day").to_pylist()
        unique = list(dict.fromkeys(days))  # one day, unless the batch spans midnight
        for day in unique:
            part = table if len(unique) == 1 else table.filter(pa.array([d == day for d in days]))
            part = part.drop_columns(PARTITION_BY)  # a Delta partition lives in the path
            name = f"day={day}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            options: dict[str, Any] = {
                "compression": "zstd",
                "use_dictionary": [n for n in part.schema.names if n not in _DISTINCT],
                "write_statistics": [n for n in _FILTERED if n in part.schema.names],
                "store_schema": False,
            }
            if self.remote:
                size = self._put(name, part, options)
            else:
                target = self.path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, target, **options)
                size = target.stat().st_size
            adds.append(
                AddAction(
                    path=name,
                    size=size,
                    partition_values={"day": day},
                    modification_time=int(time.time() * 1000),
                    data_change=True,
                    stats=json.dumps({"numRecords": part.num_rows}),
                )
            )
        return adds

    def _put(self, name: str, part: pa.Table, options: dict[str, Any]) -> int:
        """Write one Parquet file to the remote log; its size in bytes."""
        import obstore
        import pyarrow as pa
        import pyarrow.parquet as pq

        from testmem.memory.lease import object_store

        if self._objects is None:
            self._objects = object_store(self.uri)
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, **options)
        data = sink.getvalue()
        obstore.put(self._objects, name, data.to_pybytes())
        return data.size

    def _commit(self, adds: list[Any], commits: list[tuple[str, int]]) -> None:
        """Record written files in one commit, marked with ``commits`` (see
        `_append_table`); the first one creates the table.

        The table's schema gains any column this version added (evolution is
        additive: older files read it as null).
        """
        from deltalake import CommitProperties, DeltaTable, Schema, Transaction, write_deltalake
        from deltalake.transaction import create_table_with_add_actions

        schema = arrow_schema()
        ours = CommitProperties(app_transactions=[Transaction(*c) for c in commits])
        with self._committing:
            if not self._table_exists():  # losing a race to create it is a transient error
                create_table_with_add_actions(
                    self.uri,
                    Schema.from_arrow(schema),
                    adds,
                    partition_by=PARTITION_BY,
                    configuration=_SETTINGS,
                    commit_properties=ours,
                )
                self._known = True
                return
            if self._appender is None:  # reading the schema costs more than a commit
                table = DeltaTable(self.uri)
                if not _SETTINGS.items() <= table.metadata().configuration.items():
                    table.alter.set_table_properties(_SETTINGS)  # a log made before them
                if set(schema.names) - set(table.schema().to_arrow().names):
                    write_deltalake(
                        table,
                        schema.empty_table(),
                        mode="append",
                        partition_by=PARTITION_BY,
                        schema_mode="merge",
                    )
                    table.update_incremental()
                self._appender = table
            try:  # a blind append: Delta commits it after whatever others committed since
                self._appender.create_write_transaction(
                    adds,
                    mode="append",
                    schema=schema,
                    partition_by=PARTITION_BY,
                    commit_properties=ours,
                )
                # Catch the object up with the commit: commits from a stale one
                # cost more and more (60 in a row: 56 against 83 ms each).
                self._appender.update_incremental()
            except Exception:
                self._appender = None  # open afresh for the retry
                raise

    def files(self, version: int | None = None) -> list[str]:
        """The Parquet files of the current snapshot, or of ``version`` (what a reader may read)."""
        if version is None:
            self.settle()
        if not self._table_exists():
            return []
        return self._table(version=version).file_uris()

    def dataset(self, version: int | None = None) -> Any:
        """The current snapshot (or ``version``) as a pyarrow dataset (how remote logs are read)."""
        if version is None:
            self.settle()
        try:
            return self._table(version=version).to_pyarrow_dataset()
        except StoreError:
            raise
        except Exception as exc:
            raise _translate(exc, f"cannot read the event log at {self.uri}") from exc

    def size_bytes(self) -> int:
        """The bytes of the snapshot's data files, as the log records them."""
        self.settle()
        if not self._table_exists():
            return 0
        sizes = self._table().get_add_actions(flatten=True).column("size_bytes")
        return int(sum(sizes.to_pylist()))

    def version(self) -> int | None:
        self.settle()
        return self._table().version() if self._table_exists() else None

    def compact(self, vacuum_hours: float = 1.0) -> CompactionResult:
        """Merge small files into large ones in one commit, then delete files
        that left the snapshot more than ``vacuum_hours`` ago (readers that
        still hold an older snapshot keep working meanwhile)."""
        self.settle()
        if not self._table_exists():
            raise StoreError(f"no event log at {self.uri}")
        try:
            table = self._table()
            before = len(table.file_uris())
            table.optimize.compact(writer_properties=_zstd())
            table.update_incremental()
            after = len(table.file_uris())
            removed = table.vacuum(
                retention_hours=math.ceil(vacuum_hours),  # never rounds down to 0
                enforce_retention_duration=False,
                dry_run=False,
            )
            return CompactionResult(before, after, len(removed), _count(table))
        except Exception as exc:
            raise _translate(exc, f"cannot compact {self.uri}") from exc

    def _table(self, fallback: bool = True, version: int | None = None) -> Any:
        """The newest snapshot (or ``version``); if a damaged commit stops
        deltalake from reading it, the newest one before that commit, with a
        warning (unless not ``fallback``: then the error)."""
        from deltalake import DeltaTable

        try:
            return DeltaTable(self.uri, version=version)
        except Exception as exc:
            error = _translate(exc, f"cannot open the event log at {self.uri}")
            table = self._readable_before_damage() if fallback else None
            if table is None:
                raise error from exc
            import warnings

            from testmem.memory.errors import DamagedFileWarning

            warnings.warn(
                f"the log's commit {table.version() + 1} does not read: answering from "
                f"version {table.version()}; run `testmem doctor --repair`",
                DamagedFileWarning,
                stacklevel=3,
            )
            return table

    def _readable_before_damage(self) -> Any:
        """The newest version that opens, trying back from the newest commit
        (a few only: a log damaged deeper needs the doctor)."""
        from deltalake import DeltaTable

        versions = sorted(self._commit_versions(), reverse=True)
        for version in versions[1:_FALLBACK_VERSIONS]:
            with contextlib.suppress(Exception):
                return DeltaTable(self.uri, version=version)
        return None

    def _commit_versions(self) -> list[int]:
        """The versions of the commit files in ``_delta_log``, listed without
        deltalake (which refuses a damaged log); on object storage, by a LIST."""
        if not self.remote:
            log = self.path / "_delta_log"
            return [int(p.name[:20]) for p in log.glob("[0-9]*.json")] if log.is_dir() else []
        import obstore

        from testmem.memory.lease import object_store

        try:
            listed = obstore.list(object_store(self.uri), prefix="_delta_log/")
            keys = [meta["path"] for batch in listed for meta in batch]
        except Exception:  # unreachable: the caller's own error says so
            return []
        return [int(m[1]) for k in keys if (m := _COMMIT_KEY.fullmatch(k))]


def _zstd() -> Any:
    from deltalake import WriterProperties

    return WriterProperties(compression="ZSTD")


def _count(table: Any) -> int:
    actions = table.get_add_actions(flatten=True)
    return int(sum(actions.column("num_records").to_pylist()))


def events_to_table(events: Sequence[Event]) -> pa.Table:
    """Events to an Arrow table as the log stores it, grouped by event type."""
    return to_table(events)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows to an Arrow table with the declared schema, sorted so Parquet
    statistics let readers skip row groups by event type and test."""
    import pyarrow as pa

    return _sorted(pa.Table.from_pylist(list(rows), schema=arrow_schema()))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("type", "ascending"), ("nodeid", "ascending")])


def _translate(exc: Exception, context: str) -> StoreError:
    """Map deltalake/OS errors to ours, marking commit conflicts transient."""
    text = f"{type(exc).__name__}: {exc}"
    # Losing a race to create the table shows as "Protocol/Metadata changed
    # since last commit": the retry then appends to the table the winner made.
    transient = any(
        word in text
        for word in (
            "onflict",
            "already exists",
            "VersionAlreadyExists",
            "since last commit",
            "CommitFailed",
            "ommit failed",
            "timed out",
            "Timeout",
            "onnection",
        )
    )
    cls = TransientStoreError if transient else StoreError
    # deltalake chains causes over ANSI-coloured lines ("↳ cause"): keep the first
    # (what failed) and the last (why, e.g. "Read-only file system (os error 30)").
    lines = [s.strip(" ↳") for s in re.sub(r"\x1b\[[0-9;]*m", "", text).splitlines()]
    lines = [s for s in lines if s]
    return cls(f"{context}: {': '.join(dict.fromkeys([lines[0], lines[-1]]))}")


class Appender(Protocol):
    """What a writer needs of a log: an `EventLog`, or the recorder's `StoreProcess`."""

    def warm_up(self) -> None: ...

    def append(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class EventWriter:
    """Buffers events and appends them in batches: each flush is one commit.

    A background thread does the writing: it flushes when ``batch_size``
    events are waiting or the oldest has waited ``max_age_s``, so neither a
    full batch nor a slow test holds the run up, and it warms the log up
    (imports, or the recorder's store process) while the first tests run.
    `close` flushes what is left and closes the log, on the same thread:
    `finish` starts that and returns, so the caller can go on (the recorder
    prints pytest's report meanwhile) and `close` later. Only
    if the thread falls ``backlog`` batches behind does `add` write inline,
    which keeps memory bounded. A killed process loses at most the events it
    had not flushed. Write errors never propagate: they go to ``on_error``
    and the events are counted as lost, because the recorder must never
    break the run it observes.

    With ``prepare``, `add` takes whatever the caller has at hand (the
    recorder: pytest's reports) and the thread turns it into events, a batch
    at a time: ``prepare`` gets the items in the order they were added, must
    not raise, and is never called twice at once. Work done on many items in
    a row runs faster than the same work spread between the tests, whose
    code evicts it from the CPU's caches.
    """

    def __init__(
        self,
        log: Appender,
        *,
        batch_size: int = 1000,
        max_age_s: float = 2.0,
        backlog: int = 10,
        on_error: Callable[[StoreError, int], None] | None = None,
        prepare: Callable[[list[Any]], list[Event]] = list,
    ) -> None:
        self.log = log
        self.prepare = prepare
        self.batch_size = batch_size
        self.max_age_s = max_age_s
        self.backlog = backlog
        self.on_error = on_error
        self.written = 0
        self.lost = 0
        self._added: list[Any] = []  # what `add` got, not yet prepared
        self._buffer: list[Event] = []  # prepared, waiting for a commit
        self._first_at = 0.0
        self._lock = threading.Lock()  # guards both lists
        self._io = threading.Lock()  # serialises commits, keeps their order
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="testmem-writer", daemon=True)
        self._thread.start()

    def add(self, item: Any) -> None:
        """Queue an event (or, with ``prepare``, what it makes events of)."""
        with self._lock:
            if not self._added and not self._buffer:
                self._first_at = time.monotonic()
            self._added.append(item)
            added, waiting = len(self._added), len(self._added) + len(self._buffer)
        if waiting >= self.batch_size * self.backlog:
            self._flush_batch()
        elif added >= self.batch_size:
            self._wake.set()

    def flush(self) -> None:
        """Write everything waiting, one commit per ``batch_size`` events."""
        while self._flush_batch():
            pass

    def finish(self) -> None:
        """Start closing: the writer thread flushes what is left and closes
        the log while the caller goes on; `close` waits for it."""
        self._closed = True
        self._wake.set()

    def close(self) -> None:
        """Flush what is left and close the log; returns once both are done."""
        self.finish()
        self._thread.join()

    def _flush_batch(self, full_only: bool = False) -> bool:
        """Prepare what was added, then commit the oldest ``batch_size``
        events; False if there was nothing to commit."""
        with self._io:
            with self._lock:
                added, self._added = self._added, []
            events = self.prepare(added) if added else []
            with self._lock:
                self._buffer += events
                if not self._buffer or (full_only and len(self._buffer) < self.batch_size):
                    return False
                batch = self._buffer[: self.batch_size]
                self._buffer = self._buffer[self.batch_size :]
            try:
                self.log.append(batch)
                self.written += len(batch)
            except StoreError as error:
                self.lost += len(batch)
                if self.on_error:
                    self.on_error(error, len(batch))
        return True

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # reported by the first flush instead
            self.log.warm_up()  # off the test-running thread
        try:
            while not self._closed:
                self._wake.wait(min(0.25, self.max_age_s))
                self._wake.clear()
                while not self._closed and self._flush_batch(full_only=True):
                    pass
                with self._lock:
                    waiting = self._added or self._buffer
                    aged = waiting and time.monotonic() - self._first_at >= self.max_age_s
                if aged:  # one batch: events that arrive meanwhile wait their turn
                    self._flush_batch()
            self.flush()
        finally:
            self.log.close()
