"""The spool: a run's events as the test process wrote them, not yet in the log.

Writing Parquet files into the Delta log needs pyarrow and deltalake, ~0.5 s
of CPU to import before the first commit; on a short or exchange-heavy run
that alone was a fifth of all the CPU the run used. The recorder instead
writes each batch as a *segment*: one JSON line per event, written to a
temporary file, fsynced and renamed into ``DIR/spool/``, so a segment is
whole or absent and a killed run loses at most its unflushed batch.

The next process that reads or appends to the log (`EventLog.settle`: the
session's triage, any `testmem` command, the next run's history) converts
every segment into the log in one Delta commit, then deletes them. The
commit carries one Delta app transaction per segment, so a settle killed
between its commit and the deletion never commits a segment twice.

Values are JSON, never pickles: a file in a shared directory is data.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testmem.memory.events import BLOB_FIELDS, Blob, Event

if TYPE_CHECKING:
    import pyarrow as pa

_SUFFIX = ".jsonl"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BLOB_PARTS = ("", "_size", "_sha256", "_encoding", "_truncated")
SETTLE_TIMEOUT_S = 120


@dataclass(frozen=True)
class Segment:
    """One flushed batch in the spool."""

    path: Path

    @property
    def app_id(self) -> str:
        """The Delta app transaction that marks this segment as committed."""
        return f"testmem-spool-{self.path.stem}"


class Spool:
    """The segments of ``directory``: written by `append`, read by `table`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writer = uuid.uuid4().hex  # names this writer's segments
        self._numbers = itertools.count(1)

    # -- the writing side: an `Appender` for the recorder's `EventWriter` ------

    def warm_up(self) -> None:
        """Nothing to import: segments are JSON."""

    def close(self) -> None:
        """Nothing to release: a segment is complete when `append` returns."""

    def append(self, events: Sequence[Event]) -> None:
        """Write ``events`` as one segment, whole or not at all."""
        if not events:
            return
        from testmem.memory.errors import StoreError

        name = f"{self._writer}-{next(self._numbers):08d}{_SUFFIX}"
        lines = "".join(json.dumps(_entry(e), default=_encoded) + "\n" for e in events)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write_whole(self.directory / name, lines.encode())
        except OSError as exc:
            raise StoreError(f"cannot write to {self.directory}: {exc}") from exc

    # -- the reading side ------------------------------------------------------

    def segments(self) -> list[Segment]:
        """The complete segments, oldest first (a name's number keeps a writer's order)."""
        try:
            names = sorted(e.name for e in os.scandir(self.directory) if e.name.endswith(_SUFFIX))
        except (FileNotFoundError, NotADirectoryError):  # nothing spooled yet
            return []
        return [Segment(self.directory / n) for n in names if not n.startswith(".")]

    def size(self) -> int:
        """The bytes of the complete segments waiting."""
        total = 0
        for segment in self.segments():
            with contextlib.suppress(FileNotFoundError):  # settled meanwhile
                total += segment.path.stat().st_size
        return total

    @contextlib.contextmanager
    def settling(self) -> Iterator[list[Segment]]:
        """Hold the spool's lock (one settler at a time) and give its segments."""
        from filelock import FileLock

        with FileLock(str(self.directory / ".settle.lock"), timeout=SETTLE_TIMEOUT_S):
            yield self.segments()

    def table(self, segments: Sequence[Segment]) -> pa.Table:
        """The events of ``segments`` as a table of the log's schema; a
        segment that does not read is set aside (``NAME.damaged``), with a
        warning, so that it holds up no other."""
        from testmem.memory.log import rows_to_table

        rows = [row for s in segments for row in self._rows(s)]
        try:
            return rows_to_table(rows)
        except UnicodeEncodeError:  # a lone surrogate from a test's value: escape it
            from testmem.memory.events import escaped

            return rows_to_table([_escaped(r, escaped) for r in rows])

    def remove(self, segments: Sequence[Segment]) -> None:
        for segment in segments:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()

    def _rows(self, segment: Segment) -> list[dict[str, Any]]:
        try:
            text = segment.path.read_text(encoding="utf-8")
            return [_row(json.loads(line)) for line in text.splitlines()]
        except (ValueError, TypeError, KeyError) as exc:  # not what `append` writes
            import warnings

            from testmem.memory.errors import DamagedFileWarning

            segment.path.rename(segment.path.with_suffix(".damaged"))
            warnings.warn(
                f"spooled segment {segment.path.name} does not read, set aside: {exc}",
                DamagedFileWarning,
                stacklevel=4,
            )
            return []


def _write_whole(path: Path, data: bytes) -> None:
    """Write, fsync and rename into place: a reader sees all of it or nothing."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _entry(event: Event) -> list[Any]:
    return [event.TYPE, vars(event)]


def _encoded(value: Any) -> Any:
    """JSON for what `json` cannot write itself: instants and blobs."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    if isinstance(value, Blob):
        return [value.text, value.size, value.sha256, value.encoding, value.truncated]
    raise TypeError(f"cannot spool {type(value).__name__}")


def _row(entry: list[Any]) -> dict[str, Any]:
    """A spooled event as a row of the log (`events.to_row`'s shape)."""
    kind, fields = entry
    row: dict[str, Any] = {"type": kind, **fields}  # a Fact's own `type` wins
    for name in BLOB_FIELDS.intersection(fields):
        for suffix, value in zip(_BLOB_PARTS, fields[name], strict=True):
            row[name + suffix] = value
    micros = int(fields["occurred_at"])
    row["occurred_at"] = _EPOCH + micros * _MICROSECOND
    row["day"] = row["occurred_at"].date().isoformat()
    return row


def _escaped(row: dict[str, Any], escaped: Any) -> dict[str, Any]:
    return {
        k: escaped(v)
        if isinstance(v, str)
        else [escaped(x) if isinstance(x, str) else x for x in v]
        if isinstance(v, list)
        else v
        for k, v in row.items()
    }
