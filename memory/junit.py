"""Import JUnit XML reports (pytest, Maven Surefire, Jest, gotestsum...) as
runs, results and failures, so history from any runner joins the memory.

Each file becomes one run whose id is derived from the file's bytes, so
importing the same file twice adds nothing. All files are parsed before
anything is written, and everything is appended in one commit: a malformed
file leaves the store untouched. Failure texts are redacted while parsing,
before any event exists. Parsing streams (``iterparse``) and builds Arrow
columns directly, which keeps large reports fast.
"""

from __future__ import annotations

import hashlib
import io
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from testmem.memory.errors import TestmemError
from testmem.memory.events import PRODUCER, SCHEMA_VERSION, Blob, arrow_schema, uuid7
from testmem.memory.redact import DEFAULT_REDACTOR, Redactor

if TYPE_CHECKING:
    import pyarrow as pa

    from testmem.memory.store import Store

SOURCE = f"{PRODUCER} junit"
MAX_BYTES = 256 << 20  # the largest report imported (a big Surefire run is ~50 MiB)
MAX_SECONDS = 10**7  # a longer `time` (NaN, 1e308) is no duration: it counts as 0
_OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}


class JunitError(TestmemError):
    """A file is unreadable, malformed XML, or not a JUnit report."""


@dataclass(frozen=True)
class ImportResult:
    runs: int
    tests: int
    failures: int
    skipped: int  # files whose run was already in the store


def run_id_of(content: bytes) -> str:
    """A UUID (version 8, RFC 9562) made from the file's sha256: same bytes, same run."""
    value = int.from_bytes(hashlib.sha256(content).digest()[:16], "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)
    value = (value & ~(0b11 << 62)) | (0b10 << 62)
    return str(uuid.UUID(int=value))


def import_junit(
    store: Store, paths: Sequence[Path], redactor: Redactor = DEFAULT_REDACTOR
) -> ImportResult:
    """Parse every file, then append the runs not yet in the store in one commit."""
    reports: dict[str, JunitRun] = {}
    for path in paths:
        run = parse_junit(Path(path), redactor)
        reports.setdefault(run.run_id, run)
    fresh = [r for r in reports.values() if r.run_id not in _known_runs(store, list(reports))]
    if fresh:
        import pyarrow as pa

        store.events.append_table(pa.concat_tables([r.table() for r in fresh]))
    return ImportResult(
        runs=len(fresh),
        tests=sum(r.tests for r in fresh),
        failures=sum(r.failures for r in fresh),
        skipped=len(paths) - len(fresh),
    )


def _known_runs(store: Store, run_ids: list[str]) -> set[str]:
    if not store.events.exists():
        return set()
    from testmem.memory.query import History

    found = History(store).sql(
        """SELECT DISTINCT run_id FROM events
           WHERE type = 'RunStarted' AND list_contains(?, run_id)""",
        [run_ids],
    )
    return {row[0] for row in found.rows}


_RESULT = ("occurred_at", "nodeid", "file", "function", "markers", "outcome", "duration_s")
_FAILURE = (
    "occurred_at",
    "failure_id",
    "nodeid",
    "exception_type",
    "message",
    "phase",
    "traceback",
    "traceback_size",
    "traceback_sha256",
    "traceback_encoding",
    "traceback_truncated",
)


@dataclass
class JunitRun:
    """One report file as rows of its events (tuples in `_RESULT` / `_FAILURE` order,
    times in microseconds since the epoch)."""

    path: Path
    run_id: str
    started_us: int | None = None
    host: str = ""
    duration_s: float = 0.0
    results: list[tuple[Any, ...]] = field(default_factory=list)
    failure_rows: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def tests(self) -> int:
        return len(self.results)

    @property
    def failures(self) -> int:
        return len(self.failure_rows)

    def table(self) -> pa.Table:
        import pyarrow as pa

        started = self.started_us or 0
        # In type order, as the log sorts its batches; results keep the report's order.
        tables = [
            _table(
                "FailureObserved",
                self.run_id,
                _columns(_FAILURE, self.failure_rows),
                self.failures,
                {"attempt": 1},
            ),
            _table("RunFinished", self.run_id, self._finished(started), 1),
            _table("RunStarted", self.run_id, self._started(started), 1),
            _table(
                "TestFinished",
                self.run_id,
                _columns(_RESULT, self.results),
                self.tests,
                {"attempt": 1, "phase": "call"},
            ),
        ]
        return pa.concat_tables(tables)

    def _started(self, at_us: int) -> dict[str, list[Any]]:
        return {"occurred_at": [at_us], "host": [self.host], "args": [["junit", self.path.name]]}

    def _finished(self, at_us: int) -> dict[str, list[Any]]:
        outcomes = Counter(row[5] for row in self.results)
        counts = {k: [outcomes[k]] for k in ("passed", "failed", "skipped", "xfailed")}
        failed = outcomes["failed"] + outcomes["error"]
        return {
            "errors": [outcomes["error"]],
            "occurred_at": [at_us + round(self.duration_s * 1e6)],
            "duration_s": [self.duration_s],
            "exit_status": [1 if failed else 0],
            "xpassed": [0],
            **counts,
        }


def _columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    if not rows:
        return {name: [] for name in names}
    return dict(zip(names, zip(*rows, strict=True), strict=True))


def _event_ids(count: int) -> list[str]:
    """Time-ordered UUIDv7s for a batch: one random one, then its successors
    (RFC 9562's monotonic counter in the random bits), far cheaper than ``count`` draws."""
    first = uuid7().replace("-", "")
    prefix = f"{first[:8]}-{first[8:12]}-{first[12:16]}-{first[16:20]}-"
    tail = int(first[20:], 16)
    return [f"{prefix}{(tail + i) & 0xFFFFFFFFFFFF:012x}" for i in range(count)]


def _table(
    kind: str, run_id: str, columns: dict[str, Any], rows: int, same: dict[str, Any] | None = None
) -> pa.Table:
    """Arrow columns with the log's schema: the envelope is filled in, ``same`` holds
    values shared by every row, and the other columns are null."""
    import pyarrow as pa

    schema = arrow_schema()
    stamps = pa.array(columns["occurred_at"], pa.int64()).cast(schema.field("occurred_at").type)
    given = {
        **columns,
        **{
            name: pa.repeat(pa.scalar(v, schema.field(name).type), rows)
            for name, v in (same or {}).items()
        },
        "event_id": _event_ids(rows),
        "occurred_at": stamps,
        "type": pa.repeat(kind, rows),
        "run_id": pa.repeat(run_id, rows),
        "schema_version": pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int16()), rows),
        "producer": pa.repeat(SOURCE, rows),
        "day": stamps.cast(pa.date32()).cast(pa.string()),  # the UTC day, as to_row writes it
    }
    arrays = [
        pa.array(given[f.name], f.type) if f.name in given else pa.nulls(rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def parse_junit(path: Path, redactor: Redactor = DEFAULT_REDACTOR) -> JunitRun:
    """One JUnit XML file as a `JunitRun`; `JunitError` names the file and line on trouble."""
    try:
        with path.open("rb") as file:
            content = file.read(MAX_BYTES + 1)  # /dev/zero ends here too
        modified_us = int(path.stat().st_mtime * 1e6)
    except OSError as exc:
        raise JunitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(content) > MAX_BYTES:
        raise JunitError(f"{path}: larger than {MAX_BYTES >> 20} MiB, the most a report may be")
    run = JunitRun(path, run_id_of(content))
    try:
        _Parser(run, redactor, modified_us).feed(io.BytesIO(content), path)
    except ET.ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":")[0]
        raise JunitError(
            f"{path}: malformed XML at line {line}, column {column}: {reason}"
        ) from exc
    if run.started_us is None:
        run.started_us = modified_us  # no timestamps in the report: when it was written
    return run


class _Parser:
    """Streams a report: suites set the clock, each finished testcase becomes rows.

    Without a suite timestamp the clock starts at the file's modification time.
    """

    def __init__(self, run: JunitRun, redactor: Redactor, clock_us: int) -> None:
        self.run = run
        self.redactor = redactor
        self.clock_us = clock_us  # when the next testcase started

    def feed(self, source: IO[bytes], path: Path) -> None:
        depth = 0
        for event, element in ET.iterparse(source, events=("start", "end")):
            tag = element.tag
            if event == "start":
                depth += 1
                if depth == 1 and tag not in ("testsuites", "testsuite"):
                    raise JunitError(f"{path}: not a JUnit report (root element <{tag}>)")
                if tag == "testsuite":
                    self._suite(element)
                continue
            depth -= 1
            if tag == "testcase":
                self._case(element)
                element.clear()
            elif tag == "testsuite" and depth == 0:
                self.run.duration_s = max(self.run.duration_s, _seconds(element.get("time")))

    def _suite(self, suite: ET.Element) -> None:
        start = _timestamp(suite.get("timestamp"))
        if start is not None:
            self.clock_us = start
            if self.run.started_us is None or start < self.run.started_us:
                self.run.started_us = start
        self.run.host = self.run.host or suite.get("hostname", "")

    def _case(self, case: ET.Element) -> None:
        # The hot loop of an import: plain locals, and no search in childless cases.
        get = case.get
        name, classname = get("name", ""), get("classname")
        nodeid = f"{classname}::{name}" if classname else name
        duration = _seconds(get("time"))
        at = self.clock_us
        self.clock_us = at + int(duration * 1e6)
        if not len(case):
            self.run.results.append((at, nodeid, get("file", ""), name, [], "passed", duration))
            return
        verdict = next((c for c in case if c.tag in _OUTCOMES), None)
        markers = [f"{p.get('name')}={p.get('value')}" for p in case.iter("property")]
        outcome = _outcome(verdict)
        self.run.results.append((at, nodeid, get("file", ""), name, markers, outcome, duration))
        if verdict is not None and outcome in ("failed", "error"):
            self._failure(verdict, nodeid, at, outcome)

    def _failure(self, verdict: ET.Element, nodeid: str, at: int, outcome: str) -> None:
        text = self.redactor.text(verdict.text or "")
        message = self.redactor.text(verdict.get("message") or text.strip().split("\n")[0])
        trace = Blob.of(text or None)
        failure_id = f"{self.run.run_id}-{len(self.run.failure_rows)}"
        phase = "call" if outcome == "failed" else "setup"
        self.run.failure_rows.append(
            (
                at,
                failure_id,
                nodeid,
                verdict.get("type", ""),
                message,
                phase,
                trace.text,
                trace.size,
                trace.sha256,
                trace.encoding,
                trace.truncated,
            )
        )


def _outcome(verdict: ET.Element | None) -> str:
    if verdict is None:
        return "passed"
    reason = verdict.get("type", "") + verdict.get("message", "")
    if verdict.tag == "skipped" and "xfail" in reason:  # pytest reports xfail as skipped
        return "xfailed"
    return _OUTCOMES[verdict.tag]


def _seconds(value: str | None) -> float:
    """A duration attribute in seconds; one that is no duration (NaN, infinite,
    negative, over `MAX_SECONDS`) counts as 0 rather than refusing the file."""
    try:
        seconds = float(value or 0)
    except ValueError:  # Surefire writes "1,234.5" past a thousand seconds
        try:
            seconds = float(value.replace(",", "")) if value else 0.0
        except ValueError:
            return 0.0
    return seconds if 0 <= seconds <= MAX_SECONDS else 0.0


def _timestamp(value: str | None) -> int | None:
    """ISO 8601 as JUnit writers emit it, in microseconds; without an offset, UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1e6)


__all__ = ["ImportResult", "JunitError", "JunitRun", "import_junit", "parse_junit", "run_id_of"]
