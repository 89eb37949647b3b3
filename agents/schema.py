"""Response schemas of the API under test, inferred from recorded exchanges.

For every route and method, each run that got a successful (2xx) JSON answer
yields a `Snapshot`: the key paths of the bodies (``address.city``,
``items[].id``), the JSON types seen at each, a few sample values, and the
success status codes. Comparing consecutive snapshots finds what changed —
a field renamed, removed, added or retyped, a success status changed — and a
change counts only while it holds in every later snapshot (`ApiChange.observations`).
The healer uses these to update outdated tests; the generator to write new ones.
"""

from __future__ import annotations

import json
import re
import weakref
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # DuckDB stays out of the retry advisor's imports
    from testmem.memory.query import History

MAX_SAMPLES = 20  # sample values kept per key path and snapshot
BODIES_PER_RUN = 50  # bodies read per run, route, method and status

# Change kinds.
RENAMED, REMOVED, ADDED, TYPE_CHANGED, STATUS_CHANGED, NEW_ROUTE = (
    "renamed",
    "removed",
    "added",
    "type_changed",
    "status_changed",
    "new_route",
)

_NUMBERS = frozenset({"integer", "number"})
CONSISTENT_ANSWERS = 2  # answers of one run that all show a change: no need to wait a run


@dataclass
class Snapshot:
    """What one run saw of one route and method's successful answers."""

    run_id: str
    build: str
    started_at: datetime
    statuses: set[int] = field(default_factory=set)
    types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    samples: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    urls: list[str] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # per key path
    per_status: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def holding(self, path: str) -> int:
        """How many answers have ``path``'s container (every answer, at the top)."""
        container = parent(path)
        return self.answers[container] if container else sum(self.per_status.values())


@dataclass(frozen=True)
class ApiChange:
    """One consistent change of a route's answers, and the evidence for it.

    ``path``/``new_path`` are key paths (``customer.name``, ``items[].sku``);
    ``old``/``new`` are JSON types (type_changed) or status codes (status_changed).
    ``observations`` counts the runs since the change in which it held, all of them.
    ``value`` is the JSON of an added field's value when every answer since had that one.
    ``in_run`` counts the answers of the first run since the change, when every one
    of them shows it (else 0); ``moved`` says a renamed field kept its values.
    """

    kind: str
    route: str
    method: str
    since_run: str
    since_build: str
    observations: int
    path: str | None = None
    new_path: str | None = None
    old: str | None = None
    new: str | None = None
    last_good_run: str | None = None
    last_good_build: str | None = None
    value: str | None = None
    in_run: int = 0
    moved: bool = False

    def settled(self, min_observations: int) -> bool:
        """Seen in enough runs, or at first sight when that run is consistent:
        several answers all showing the change, or a rename that kept the values."""
        if self.observations >= min_observations:
            return True
        return self.observations >= 1 and (self.in_run >= CONSISTENT_ANSWERS or self.moved)

    @property
    def key(self) -> str | None:
        """The old field name, as a test would spell it (``name`` of ``customer.name``)."""
        return leaf(self.path) if self.path else None

    @property
    def new_key(self) -> str | None:
        return leaf(self.new_path) if self.new_path else None

    def describe(self) -> str:
        where = f"{self.method} {self.route}"
        return {
            RENAMED: f"{where}: field {self.path!r} renamed {self.new_path!r}",
            REMOVED: f"{where}: field {self.path!r} removed",
            ADDED: f"{where}: new field {self.path!r} ({self.new})",
            TYPE_CHANGED: f"{where}: field {self.path!r} changed type {self.old} -> {self.new}",
            STATUS_CHANGED: f"{where}: success status changed {self.old} -> {self.new}",
            NEW_ROUTE: f"{where}: new route",
        }[self.kind] + f" since build {self.since_build or self.since_run[:8]}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "description": self.describe()}


def leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1].removesuffix("[]")


def parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


# -- reading snapshots ---------------------------------------------------------


@dataclass(frozen=True)
class _Recorded:
    """Every snapshot of a History, read once: its views never change."""

    series: dict[tuple[str, str], list[Snapshot]]
    first_run: datetime | None


_READ: weakref.WeakKeyDictionary[History, _Recorded] = weakref.WeakKeyDictionary()


def snapshots(
    history: History,
    route: str | None = None,
    method: str | None = None,
    until: datetime | None = None,
) -> dict[tuple[str, str], list[Snapshot]]:
    """Per (route, method), one snapshot per run with a 2xx JSON answer, oldest
    first; with ``until``, only runs started by then."""
    chosen = {}
    for (r, m), series in _recorded(history).series.items():
        if route not in (None, r) or method not in (None, m):
            continue
        kept = [s for s in series if until is None or s.started_at <= until]
        if kept:
            chosen[(r, m)] = kept
    return chosen


def _recorded(history: History) -> _Recorded:
    if history not in _READ:
        _READ[history] = _Recorded(
            _read_snapshots(history), history.sql("SELECT min(started_at) FROM runs").rows[0][0]
        )
    return _READ[history]


def _read_snapshots(history: History) -> dict[tuple[str, str], list[Snapshot]]:
    rows = history.sql(
        f"""SELECT e.run_id, coalesce(r.build, '') AS build, r.started_at, e.route,
                   e.method, e.status, e.url, e.response_body
            FROM exchanges e JOIN runs r USING (run_id)
            WHERE e.status BETWEEN 200 AND 299 AND e.response_body IS NOT NULL
              AND coalesce(e.response_body_encoding, 'utf-8') = 'utf-8'
              AND NOT coalesce(e.response_body_truncated, false)
            QUALIFY row_number() OVER (
                PARTITION BY e.run_id, e.route, e.method, e.status ORDER BY e.occurred_at
            ) <= {BODIES_PER_RUN}
            ORDER BY r.started_at, e.occurred_at"""
    ).rows
    found: dict[tuple[str, str], dict[str, Snapshot]] = defaultdict(dict)
    for run_id, build, started_at, route, method, status, url, body in rows:
        try:
            value = json.loads(body)
        except ValueError:
            continue
        per_run = found[(route, method)]
        snapshot = per_run.setdefault(run_id, Snapshot(run_id, build, started_at))
        snapshot.statuses.add(int(status))
        snapshot.per_status[int(status)] += 1
        snapshot.urls.append(url)
        seen: set[str] = set()
        _add_shape(snapshot, value, "", seen)
        for path in seen:
            snapshot.answers[path] += 1
    return {key: list(runs.values()) for key, runs in found.items()}


def _add_shape(snapshot: Snapshot, value: Any, path: str, seen: set[str] | None = None) -> None:
    """Record the key paths under ``path``: objects by key, arrays as ``path[]``
    (and add them to ``seen``)."""
    if path:
        snapshot.types[path].add(json_type(value))
        if seen is not None:
            seen.add(path)
    if isinstance(value, dict):
        for key, item in value.items():
            _add_shape(snapshot, item, f"{path}.{key}" if path else str(key), seen)
    elif isinstance(value, list):
        for item in value:
            _add_shape(snapshot, item, f"{path}[]" if path else "[]", seen)
    elif path and len(snapshot.samples[path]) < MAX_SAMPLES:
        snapshot.samples[path].add(json.dumps(value))


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


# -- comparing snapshots ---------------------------------------------------------


def detect_changes(
    history: History,
    route: str | None = None,
    method: str | None = None,
    min_observations: int = 2,
    until: datetime | None = None,
) -> list[ApiChange]:
    """Changes in force (as of ``until``, else now), seen in at least
    ``min_observations`` runs in a row."""
    first_run = _recorded(history).first_run
    changes = []
    for (r, m), series in sorted(snapshots(history, route, method, until).items()):
        changes += changes_in(r, m, series, first_run)
    return [c for c in changes if c.observations >= min_observations]


def changes_in(
    route: str, method: str, series: list[Snapshot], first_run: datetime | None = None
) -> list[ApiChange]:
    """Every change between consecutive snapshots that holds until the last one."""
    found = []
    if first_run is not None and series and series[0].started_at > first_run:
        found.append(_change(NEW_ROUTE, route, method, series, 0))
    for i in range(1, len(series)):
        found += [
            change
            for change in _differences(route, method, series, i)
            if all(_holds(change, series[i - 1], later) for later in series[i:])
        ]
    return found


def _differences(route: str, method: str, series: list[Snapshot], i: int) -> list[ApiChange]:
    before, after = series[i - 1], series[i]
    removed = _top_most(set(before.types) - set(after.types), lacks=after)
    # A field seen in any earlier run is back, not new: it flaps.
    earlier = set().union(*(set(s.types) for s in series[: i - 1]))
    added = _top_most(set(after.types) - set(before.types) - earlier, lacks=before)
    renames = _pair_renames(removed, added, before, after)
    changes = [
        _change(RENAMED, route, method, series, i, path=old, new_path=new)
        for old, new in renames.items()
    ]
    renamed_to = set(renames.values())
    changes += [
        _change(REMOVED, route, method, series, i, path=p) for p in sorted(removed - set(renames))
    ]
    changes += [
        _change(
            ADDED,
            route,
            method,
            series,
            i,
            path=p,
            new=_type_name(after.types[p]),
            value=_only_value(series[i:], p),
        )
        for p in sorted(added - renamed_to)
    ]
    changes += [
        _change(
            TYPE_CHANGED,
            route,
            method,
            series,
            i,
            path=p,
            old=_type_name(before.types[p]),
            new=_type_name(after.types[p]),
        )
        for p in sorted(set(before.types) & set(after.types))
        if not _compatible(before.types[p], after.types[p])
    ]
    changes += _status_change(route, method, series, i)
    return [replace(c, in_run=_showing(c, after), moved=_moved(c, before, after)) for c in changes]


def _showing(change: ApiChange, after: Snapshot) -> int:
    """The answers of ``after`` that show ``change``, when all of them do; else 0."""
    if change.kind == STATUS_CHANGED:
        return after.per_status[int(str(change.new))]  # the old status is gone from the run
    if change.kind not in (RENAMED, ADDED, REMOVED, TYPE_CHANGED) or not change.path:
        return 0
    path = str(change.new_path if change.kind == RENAMED else change.path)
    holding = after.holding(path)
    if change.kind == REMOVED:  # absent from every answer, by construction
        return holding
    # every answer with the field's container has it (a type change: no old-typed value)
    return holding if after.answers[path] == holding else 0


def _moved(change: ApiChange, before: Snapshot, after: Snapshot) -> bool:
    if change.kind != RENAMED or not change.path or not change.new_path:
        return False
    return bool(before.samples[change.path] & after.samples[change.new_path])


def _top_most(paths: set[str], lacks: Snapshot) -> set[str]:
    """Drop paths whose parent went too, and array items the other side never had
    (an empty list says nothing about its items' fields)."""
    kept = set()
    for path in paths:
        if path.endswith("[]"):  # the items of a list, not a field
            continue
        ancestors = _ancestors(path)
        if any(a in paths for a in ancestors):
            continue
        if all(a in lacks.types for a in ancestors if a.endswith("[]")):
            kept.add(path)
    return kept


def _ancestors(path: str) -> list[str]:
    """``a.b[].c`` -> ``a``, ``a.b[]``."""
    parts = path.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def _pair_renames(
    removed: set[str], added: set[str], before: Snapshot, after: Snapshot
) -> dict[str, str]:
    """A removed field and an added one at the same level, of the same type, are a
    rename; shared sample values decide between several candidates."""
    renames: dict[str, str] = {}
    for old in sorted(removed):
        candidates = [
            new
            for new in added - set(renames.values())
            if parent(new) == parent(old) and _compatible(before.types[old], after.types[new])
        ]
        scored = sorted(
            ((len(before.samples[old] & after.samples[new]), new) for new in candidates),
            reverse=True,
        )
        if len(scored) == 1 or (len(scored) > 1 and scored[0][0] > scored[1][0]):
            renames[old] = scored[0][1]
    return renames


def _status_change(route: str, method: str, series: list[Snapshot], i: int) -> list[ApiChange]:
    gone = series[i - 1].statuses - series[i].statuses
    came = series[i].statuses - series[i - 1].statuses
    if len(gone) != 1 or len(came) != 1:
        return []
    old, new = str(gone.pop()), str(came.pop())
    return [_change(STATUS_CHANGED, route, method, series, i, old=old, new=new)]


def _holds(change: ApiChange, before: Snapshot, later: Snapshot) -> bool:
    kinds = {
        RENAMED: lambda: change.path not in later.types and change.new_path in later.types,
        REMOVED: lambda: change.path not in later.types,
        ADDED: lambda: change.path in later.types,
        TYPE_CHANGED: lambda: (
            change.path in later.types
            and not _compatible(before.types[str(change.path)], later.types[str(change.path)])
        ),
        STATUS_CHANGED: lambda: (
            int(str(change.old)) not in later.statuses and int(str(change.new)) in later.statuses
        ),
        NEW_ROUTE: lambda: True,
    }
    return bool(kinds[change.kind]())


def _compatible(old: set[str], new: set[str]) -> bool:
    """Types agree if they share one, null aside; integers and floats are both numbers."""

    def widen(types: set[str]) -> set[str]:
        widened = (types | _NUMBERS) if types & _NUMBERS else set(types)
        return widened - {"null"}

    a, b = widen(old), widen(new)
    return not a or not b or bool(a & b)


def _only_value(series: list[Snapshot], path: str) -> str | None:
    """The JSON of the one value ``path`` had in every answer of ``series``, if one."""
    seen = set().union(*(s.samples.get(path, set()) for s in series))
    return seen.pop() if len(seen) == 1 else None


def _type_name(types: set[str]) -> str:
    return "|".join(sorted(types))


def _change(
    kind: str, route: str, method: str, series: list[Snapshot], i: int, **what: Any
) -> ApiChange:
    since, good = series[i], series[i - 1] if i > 0 else None
    return ApiChange(
        kind=kind,
        route=route,
        method=method,
        since_run=since.run_id,
        since_build=since.build,
        observations=len(series) - i,
        last_good_run=good.run_id if good else None,
        last_good_build=good.build if good else None,
        **what,
    )


# -- describing the current schema (for the generator) ------------------------------

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def value_format(samples: set[str]) -> str | None:
    """``date-time`` or ``email`` when every sampled string has that format."""
    texts = [json.loads(s) for s in samples]
    if not texts or not all(isinstance(t, str) for t in texts):
        return None
    for name, pattern in (("date-time", _ISO_TIME), ("email", _EMAIL)):
        if all(pattern.match(t) for t in texts):
            return name
    return None
