"""The event schema: every fact testmem remembers, and how it maps to a row.

This module owns the schema. Events are dataclasses with a common envelope,
never changed once made (yet not ``frozen``: a frozen dataclass takes three
times as long to build, and the recorder builds one per test). `to_row` /
`from_row` map them to the flat rows of the log, whose Arrow schema is
declared here explicitly (never inferred). Schema changes are additive: add a
nullable column, never rename or retype one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = 1
PRODUCER = "testmem/0.1"
DEFAULT_CAP = 64 * 1024


# The 80 random bits keep 12 (rand_a) and 62 (rand_b), around the version
# (7) and the variant (0b10).
_UUID7_RANDOM = 0xFFF << 64 | (1 << 62) - 1
_UUID7_VERSION = 0x7 << 76 | 0b10 << 62


def uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562): 48 bits of Unix ms, then randomness."""
    ms = time.time_ns() // 1_000_000
    value = ms << 80 | int.from_bytes(os.urandom(10)) & _UUID7_RANDOM | _UUID7_VERSION
    hex = value.to_bytes(16).hex()  # as str(uuid.UUID(int=value)) writes it, faster
    return f"{hex[:8]}-{hex[8:12]}-{hex[12:16]}-{hex[16:20]}-{hex[20:]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Blob:
    """A capped text value that remembers the size and sha256 of the whole.

    Binary or non-UTF-8 content is kept as base64 (``encoding="base64"``) so
    any bytes survive the round trip through a string column.
    """

    text: str | None
    size: int = 0
    sha256: str | None = None
    encoding: str = "utf-8"
    truncated: bool = False

    @classmethod
    def of(cls, value: bytes | str | None, cap: int = DEFAULT_CAP) -> Blob:
        if value is None:
            return cls(None)
        raw = _encoded(value) if isinstance(value, str) else value
        digest = hashlib.sha256(raw).hexdigest()
        head = raw[:cap]
        try:
            text, encoding = head.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if len(raw) > cap and exc.start >= cap - 3:  # a character cut by the cap
                text, encoding = head[: exc.start].decode("utf-8"), "utf-8"
            else:
                import base64

                text, encoding = base64.b64encode(head).decode("ascii"), "base64"
        return cls(text, len(raw), digest, encoding, len(raw) > cap)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what xdist ships; `Blob(**d)` reads it back), without
        `dataclasses.asdict`'s deep copy: a blob's fields are all immutable."""
        return {
            "text": self.text,
            "size": self.size,
            "sha256": self.sha256,
            "encoding": self.encoding,
            "truncated": self.truncated,
        }


def _encoded(text: str) -> bytes:
    """A string's bytes: those that came in undecodable (surrogate-escaped)
    come back as they were; a lone surrogate becomes its escape ``\\ud800``."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def escaped(text: str) -> str:
    """``text`` as valid UTF-8: a lone surrogate becomes its escape ``\\udcff``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _escape_text(event: Event) -> None:
    """Escape, in place, every string of ``event`` that is not valid UTF-8."""
    for name, value in vars(event).items():
        if isinstance(value, str):
            setattr(event, name, escaped(value))
        elif isinstance(value, list):
            setattr(event, name, [escaped(v) if isinstance(v, str) else v for v in value])
        elif isinstance(value, Blob) and value.text is not None:
            setattr(event, name, dataclasses.replace(value, text=escaped(value.text)))


# Column declarations: (name, arrow type). Blob fields expand to five
# columns: (suffix of the column's name, attribute of the Blob, arrow type).
_BLOB_COLUMNS = (
    ("", "text", "string"),
    ("_size", "size", "int64"),
    ("_sha256", "sha256", "string"),
    ("_encoding", "encoding", "string"),
    ("_truncated", "truncated", "bool"),
)
_ENVELOPE = (
    ("event_id", "string"),
    ("type", "string"),
    ("occurred_at", "timestamp"),
    ("run_id", "string"),
    ("schema_version", "int16"),
    ("producer", "string"),
)


@dataclass(kw_only=True)
class Event:
    """The envelope every event shares."""

    TYPE: ClassVar[str] = "Event"
    run_id: str
    event_id: str = field(default_factory=uuid7)
    occurred_at: datetime = field(default_factory=utcnow)
    schema_version: int = SCHEMA_VERSION
    producer: str = PRODUCER

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its values in field order (the recorder sends every
        event to its store process): half the time of pickle's default."""
        cls = type(self)
        return _rebuild, (cls, _values(cls)(self))


@dataclass(kw_only=True)
class RunStarted(Event):
    TYPE: ClassVar[str] = "RunStarted"
    build: str = ""
    branch: str = ""
    host: str = ""
    rootdir: str = ""
    python_version: str = ""
    pytest_version: str = ""
    args: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class TestFinished(Event):
    __test__ = False
    TYPE: ClassVar[str] = "TestFinished"
    nodeid: str
    file: str = ""
    function: str = ""
    params: str | None = None  # JSON object of parameter ids
    markers: list[str] = field(default_factory=list)
    outcome: str = "passed"  # passed|failed|error|skipped|xfailed|xpassed
    phase: str = "call"  # the phase that decided the outcome
    duration_s: float = 0.0
    attempt: int = 1
    worker: str | None = None


@dataclass(kw_only=True)
class HttpExchanged(Event):
    TYPE: ClassVar[str] = "HttpExchanged"
    exchange_id: str
    nodeid: str | None = None
    phase: str | None = None
    fixture: str | None = None  # the fixture whose setup or teardown made it
    attempt: int = 1
    method: str = "GET"
    url: str = ""
    route: str = ""
    route_source: str | None = None  # framework|openapi|pattern (testmem.memory.routes)
    status: int | None = None
    request_headers: str = "{}"  # JSON object, redacted
    request_body: Blob = Blob(None)
    response_headers: str = "{}"
    response_body: Blob = Blob(None)
    duration_s: float = 0.0
    error: str | None = None  # transport error, e.g. "ConnectTimeout: ..."


@dataclass(kw_only=True)
class FailureObserved(Event):
    TYPE: ClassVar[str] = "FailureObserved"
    failure_id: str
    nodeid: str
    phase: str = "call"
    attempt: int = 1
    exception_type: str = ""
    message: str = ""
    assertion: str | None = None
    crash_path: str | None = None
    crash_line: int | None = None
    traceback: Blob = Blob(None)
    exchange_ids: list[str] = field(default_factory=list)
    exchange_id: str | None = None  # the one exchange that explains the failure
    exchange_rule: str | None = None  # how it was chosen: named|error|last|setup|fixture


@dataclass(kw_only=True)
class RunFinished(Event):
    TYPE: ClassVar[str] = "RunFinished"
    exit_status: int = 0
    duration_s: float = 0.0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    xfailed: int = 0
    xpassed: int = 0


@dataclass(kw_only=True)
class Fact(Event):
    """What the memory concluded or was told: ``FailureLinked``, ``DecisionMade``,
    ``RetryAttempted``, ``HealProposed``, ``DefectFiled``, ``IncidentLabelled``...

    One class serves all of them: ``type`` names the event, the columns every
    such event is looked up by are typed, and the rest of its payload is a
    JSON object in ``detail`` (DuckDB reads it with ``detail->>'$.key'``).
    """

    TYPE: ClassVar[str] = "Fact"
    type: str
    nodeid: str | None = None
    failure_id: str | None = None
    incident_id: str | None = None
    signature: str | None = None
    detail: str = "{}"

    @classmethod
    def of(cls, type: str, run_id: str = "", **detail: Any) -> Fact:
        """A fact whose typed columns are taken out of ``detail`` when present."""
        typed = {
            k: detail.pop(k)
            for k in ("nodeid", "failure_id", "incident_id", "signature")
            if k in detail
        }
        return cls(
            type=type,
            run_id=run_id,
            **typed,
            detail=escaped(json.dumps(detail, default=str, ensure_ascii=False)),
        )

    @property
    def data(self) -> dict[str, Any]:
        return dict(json.loads(self.detail))


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (RunStarted, TestFinished, HttpExchanged, FailureObserved, RunFinished)
}

_FIELD_TYPES = {
    "build": "string",
    "branch": "string",
    "host": "string",
    "rootdir": "string",
    "python_version": "string",
    "pytest_version": "string",
    "args": "list<string>",
    "nodeid": "string",
    "file": "string",
    "function": "string",
    "params": "string",
    "markers": "list<string>",
    "outcome": "string",
    "phase": "string",
    "duration_s": "float64",
    "attempt": "int16",
    "worker": "string",
    "exchange_id": "string",
    "method": "string",
    "url": "string",
    "route": "string",
    "status": "int16",
    "request_headers": "string",
    "request_body": "blob",
    "response_headers": "string",
    "response_body": "blob",
    "error": "string",
    "failure_id": "string",
    "exception_type": "string",
    "message": "string",
    "assertion": "string",
    "crash_path": "string",
    "crash_line": "int32",
    "traceback": "blob",
    "exchange_ids": "list<string>",
    "exit_status": "int16",
    "passed": "int32",
    "failed": "int32",
    "errors": "int32",
    "skipped": "int32",
    "xfailed": "int32",
    "xpassed": "int32",
    "incident_id": "string",
    "signature": "string",
    "detail": "string",
    "fixture": "string",
    "exchange_rule": "string",
    "route_source": "string",
}


def _columns() -> list[tuple[str, str]]:
    columns = list(_ENVELOPE)
    for name, kind in _FIELD_TYPES.items():
        if kind == "blob":
            columns += [(name + suffix, t) for suffix, _, t in _BLOB_COLUMNS]
        else:
            columns.append((name, kind))
    return [*columns, ("day", "string")]


COLUMNS: list[tuple[str, str]] = _columns()
BLOB_FIELDS = frozenset(name for name, kind in _FIELD_TYPES.items() if kind == "blob")


@cache
def arrow_schema() -> pa.Schema:
    """The log's Arrow schema (pyarrow is imported only when a batch is written)."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "list<string>": pa.list_(pa.string()),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS])


_FIELD_NAMES: dict[type[Event], tuple[str, ...]] = {}
_VALUES: dict[type[Event], attrgetter[tuple[Any, ...]]] = {}


def _field_names(cls: type[Event]) -> tuple[str, ...]:
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return _FIELD_NAMES[cls]


def _values(cls: type[Event]) -> attrgetter[tuple[Any, ...]]:
    """A function of an event of ``cls`` to its values, in field order."""
    if cls not in _VALUES:
        _VALUES[cls] = attrgetter(*_field_names(cls))
    return _VALUES[cls]


def _rebuild(cls: type[Event], values: tuple[Any, ...]) -> Event:
    return cls(**dict(zip(_field_names(cls), values, strict=True)))


def to_row(event: Event) -> dict[str, Any]:
    """Flatten an event to a row of the log (blobs become five columns)."""
    row: dict[str, Any] = {"type": event.TYPE}
    for name in _field_names(type(event)):
        value = getattr(event, name)
        if isinstance(value, Blob):
            row[name] = value.text
            row[name + "_size"] = value.size
            row[name + "_sha256"] = value.sha256
            row[name + "_encoding"] = value.encoding
            row[name + "_truncated"] = value.truncated
        else:
            row[name] = value
    row["day"] = _day(event.occurred_at)
    return row


def to_table(events: Sequence[Event]) -> pa.Table:
    """Events to an Arrow table of the log's schema, the same rows `to_row`
    gives, built per event class: several times faster than one dict per
    event, which matters on the recorder's path."""
    import pyarrow as pa

    by_class: dict[type[Event], list[Event]] = {}
    for event in events:
        by_class.setdefault(type(event), []).append(event)
    parts = [_valid_class_table(cls, group) for cls, group in by_class.items()]
    return pa.concat_tables(parts) if parts else arrow_schema().empty_table()


def _valid_class_table(cls: type[Event], group: list[Event]) -> pa.Table:
    """`_class_table`, with the text that is not valid UTF-8 (a lone surrogate
    from a parametrize value, an assertion's diff) escaped: no value may fail
    a batch. Escaped only when Arrow refuses, so valid batches pay nothing."""
    try:
        return _class_table(cls, group)
    except UnicodeEncodeError:
        for event in group:
            _escape_text(event)
        return _class_table(cls, group)


def _class_table(cls: type[Event], group: list[Event]) -> pa.Table:
    """The events of one class as a table.

    Arrow reads the plain fields straight from each event's ``__dict__`` (no
    Python list per column, which is why events have no ``__slots__``); the
    instant goes through integer microseconds, which also give the day
    without a `datetime` per event. Every column the class lacks shares one
    all-null array per type.
    """
    import pyarrow as pa

    schema = arrow_schema()
    plain = _plain_struct(cls)
    rows = pa.array([vars(e) for e in group], plain)
    columns = {f.name: rows.field(i) for i, f in enumerate(plain)}
    for name in BLOB_FIELDS.intersection(_field_names(cls)):
        blobs = [getattr(e, name) for e in group]
        for suffix, attribute, _ in _BLOB_COLUMNS:
            values = list(map(attrgetter(attribute), blobs))
            columns[name + suffix] = pa.array(values, schema.field(name + suffix).type)
    micros = _micros(group)
    columns["occurred_at"] = pa.array(micros, pa.int64()).view(schema.field("occurred_at").type)
    columns["day"] = _days(micros)
    if "type" not in columns:  # a field of `Fact` only; the class says it for the others
        columns["type"] = pa.repeat(cls.TYPE, len(group))
    nulls: dict[pa.DataType, pa.Array] = {}
    for f in schema:
        if f.name not in columns:
            if f.type not in nulls:
                nulls[f.type] = pa.nulls(len(group), f.type)
            columns[f.name] = nulls[f.type]
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


_PLAIN_STRUCTS: dict[type[Event], pa.StructType] = {}


def _plain_struct(cls: type[Event]) -> pa.StructType:
    """The fields of ``cls`` that are one column each, as an Arrow struct."""
    import pyarrow as pa

    if cls not in _PLAIN_STRUCTS:
        schema = arrow_schema()
        names = [n for n in _field_names(cls) if n in schema.names and n not in BLOB_FIELDS]
        fields = [schema.field(n) for n in names if n != "occurred_at"]
        _PLAIN_STRUCTS[cls] = pa.struct(fields)
    return _PLAIN_STRUCTS[cls]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000


def _micros(events: list[Event]) -> list[int]:
    """When each event occurred, in microseconds since the epoch, exactly (a
    naive time counts as UTC, as Arrow reads it)."""
    try:
        return [(e.occurred_at - _EPOCH) // _MICROSECOND for e in events]
    except TypeError:  # a naive datetime among them
        return [(_aware(e.occurred_at) - _EPOCH) // _MICROSECOND for e in events]


def _days(micros: list[int]) -> pa.Array:
    """The UTC day of each instant (one string per distinct day, not per event).
    In Python rather than an Arrow cast: casting imports pyarrow.compute, 0.15 s
    of a recording run's start-up."""
    import pyarrow as pa

    first, last = min(micros) // _DAY_US, max(micros) // _DAY_US
    if first == last:  # unless the batch spans midnight
        return pa.repeat(_day_name(first), len(micros))
    return pa.array([_day_name(m // _DAY_US) for m in micros], pa.string())


@cache
def _day_name(days: int) -> str:
    return (_EPOCH + timedelta(days=days)).date().isoformat()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(moment: datetime) -> str:
    """The UTC day, as `to_table` writes it."""
    return _aware(moment).astimezone(UTC).date().isoformat()


def from_row(row: dict[str, Any]) -> Event:
    """Rebuild an event from a row of the log; unknown types come back as `Fact`."""
    cls = EVENT_TYPES.get(row["type"], Fact)
    values: dict[str, Any] = {}
    for name in _field_names(cls):
        if name in BLOB_FIELDS:
            values[name] = Blob(
                row.get(name),
                row.get(name + "_size") or 0,
                row.get(name + "_sha256"),
                row.get(name + "_encoding") or "utf-8",
                bool(row.get(name + "_truncated")),
            )
        elif row.get(name) is not None:
            values[name] = row[name]
    return cls(**values)
