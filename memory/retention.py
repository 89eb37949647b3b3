"""Retention: forget old events, or only the bodies of old HTTP exchanges.

Both rewrite the event log with one atomic Delta commit (a reader sees the
log before or after, never half of it), then vacuum, so the space of the
rewritten files is reclaimed at once. Predicates are built only from a
validated `datetime` formatted by us, never from the user's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from testmem.memory.errors import StoreError, TestmemError
from testmem.memory.store import Store

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_BODIES = ("request_body", "response_body")


class RetentionError(TestmemError):
    """A retention setting (a date or an age) is not valid."""


@dataclass(frozen=True)
class Purged:
    events: int  # events deleted (or bodies dropped)
    files_removed: int  # Parquet files deleted by the vacuum
    cutoff: datetime


def parse_date(text: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO 8601 date-time; naive values are UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RetentionError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def parse_age(text: str) -> timedelta:
    """An age such as ``30d``, ``12h`` or ``2w``."""
    found = _AGE.match(text)
    if not found:
        raise RetentionError(f"not an age: {text!r} (use e.g. 30d, 12h or 2w)")
    return int(found.group(1)) * _UNITS[found.group(2)]


def purge_before(store: Store, before: datetime) -> Purged:
    """Delete every event that occurred before ``before``."""
    table = _table(store)
    with _translated("purge"):
        metrics = table.delete(_before(before))
        return Purged(_deleted(metrics), _vacuum(table), before)


def drop_bodies(store: Store, older_than: timedelta, now: datetime | None = None) -> Purged:
    """Set the request and response bodies of exchanges older than ``older_than``
    to NULL; their size and sha256 stay, and so does every event."""
    cutoff = (now or datetime.now(UTC)) - older_than
    table = _table(store)
    kept = " OR ".join(f"{name} IS NOT NULL" for name in _BODIES)
    predicate = f"type = 'HttpExchanged' AND {_before(cutoff)} AND ({kept})"
    with _translated("drop bodies in"):
        metrics = table.update(updates={name: "NULL" for name in _BODIES}, predicate=predicate)
        return Purged(int(metrics.get("num_updated_rows", 0)), _vacuum(table), cutoff)


def _before(when: datetime) -> str:
    # Safe to inline: strftime of a datetime yields only digits and separators.
    stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"occurred_at < '{stamp}'"


def _table(store: Store) -> Any:
    if not store.events.exists():
        raise StoreError(f"no event log at {store.events.path}")
    return store.events._table()


def _deleted(metrics: dict[str, Any]) -> int:
    return int(metrics.get("num_deleted_rows", 0))


def _vacuum(table: Any) -> int:
    """Delete the files the rewrite replaced: purging is meant to reclaim space now."""
    table.update_incremental()
    removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return len(removed)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """deltalake raises several unrelated types; they become a `StoreError`."""
    try:
        yield
    except TestmemError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot {action} the event log: {first[:200]}") from exc
