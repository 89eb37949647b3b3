"""What a report holds: ISO weeks in a time zone, and the figures of each.

The catalogue `METRICS` names every headline figure once; the HTML, Markdown,
JSON and terminal renderers all walk it, so a figure added here shows up
everywhere with its week-over-week change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from testmem.memory.errors import TestmemError

ENV_TZ = "TESTMEM_TZ"
CATEGORIES = ("transient", "flaky", "outdated", "regression", "unknown")


class ReportError(TestmemError):
    """The report was asked for something impossible (unknown time zone, bad dates)."""


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    kind: str = "count"  # count | rate (0..1) | hours | seconds
    better: str = "up"  # which direction is good: up | down | none


METRICS: tuple[Metric, ...] = (
    Metric("runs", "Runs", better="none"),
    Metric("tests", "Tests executed", better="none"),
    Metric("pass_rate", "Pass rate", "rate"),
    Metric("failures", "Failures", better="down"),
    *(Metric(f"failures_{c}", f"Failures: {c}", better="down") for c in CATEGORIES),
    Metric("flaky_tests", "Flaky tests", better="down"),
    Metric("incidents_new", "Incidents new", better="down"),
    Metric("incidents_recurring", "Incidents recurring", better="down"),
    Metric("incidents_resolved", "Incidents resolved"),
    Metric("incidents_open", "Incidents open at week end", better="down"),
    Metric("mttr_hours", "Mean time to resolve", "hours", better="down"),
    Metric("defects_filed", "Defects filed", better="none"),
    Metric("heals_proposed", "Heals proposed", better="none"),
    Metric("heals_applied", "Heals applied"),
    Metric("tests_generated", "Tests generated"),
    Metric("retries_rescued", "Tests rescued by retry", better="none"),
    Metric("retry_wait_s", "Time waiting for retries", "seconds", better="down"),
    Metric("requests", "HTTP requests", better="none"),
    Metric("error_rate", "HTTP error rate", "rate", better="down"),
    Metric("latency_p50_ms", "Latency p50 (ms)", "ms", better="down"),
    Metric("latency_p95_ms", "Latency p95 (ms)", "ms", better="down"),
)
METRIC = {m.key: m for m in METRICS}


def resolve_tz(name: str | None) -> str:
    """A valid IANA time zone name (the report's weeks start at its midnight)."""
    chosen = name or "UTC"
    try:
        ZoneInfo(chosen)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError(
            f"unknown time zone {chosen!r} (use an IANA name like Europe/Paris)"
        ) from exc
    return chosen


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def week_label(start: date) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


MAX_WEEKS = 520  # a report covers at most ten years: its size stays bounded
_EARLIEST, _LATEST = date(1970, 1, 5), date(9999, 12, 1)  # the log's instants hold these


@dataclass(frozen=True)
class Period:
    """The ISO weeks shown, plus the one before the first (for its change)."""

    starts: tuple[date, ...]  # shown weeks, oldest first
    tz: str

    @classmethod
    def of(cls, weeks: int, since: date | None, until: date | None, tz: str) -> Period:
        if since is None and not 1 <= weeks <= MAX_WEEKS:
            raise ReportError(f"--weeks must be from 1 to {MAX_WEEKS} (ten years), not {weeks}")
        for option, day in (("--since", since), ("--until", until)):
            if day and not _EARLIEST <= day <= _LATEST:
                raise ReportError(f"{option} {day} is out of range ({_EARLIEST} to {_LATEST})")
        last = week_start(until or datetime.now(ZoneInfo(tz)).date())
        first = week_start(since) if since else last - timedelta(weeks=weeks - 1)
        if first > last:
            raise ReportError(f"--since {since} is after --until {until}")
        count = (last - first).days // 7 + 1
        if count > MAX_WEEKS:
            raise ReportError(f"{first} to {last} is {count} weeks, more than {MAX_WEEKS}")
        return cls(tuple(first + timedelta(weeks=i) for i in range(count)), tz)

    @property
    def previous(self) -> date:
        return self.starts[0] - timedelta(weeks=1)

    def bounds(self) -> tuple[datetime, datetime]:
        """UTC instants from the start of the hidden previous week to the end of the last."""
        zone = ZoneInfo(self.tz)
        lo = datetime.combine(self.previous, datetime.min.time(), zone)
        hi = datetime.combine(self.starts[-1] + timedelta(weeks=1), datetime.min.time(), zone)
        return lo.astimezone(UTC), hi.astimezone(UTC)


@dataclass
class WeekFigures:
    start: date
    values: dict[str, float | None]
    change: dict[str, float | None] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return week_label(self.start)

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.label,
            "start": self.start.isoformat(),
            **self.values,
            "change": self.change,
        }


@dataclass
class Report:
    """Everything a weekly report shows; renderers only format it."""

    store: str
    tz: str
    generated_at: datetime
    weeks: list[WeekFigures]
    flaky: dict[str, list[dict[str, Any]]]  # top / newly / no_longer, for the last week
    slowest: list[dict[str, Any]]  # nodeid, mean_s per week, change
    routes: list[dict[str, Any]]  # route, last week's figures, per-week series, schema changes
    notes: list[str]

    @property
    def empty(self) -> bool:
        return not any(w.values.get("runs") or w.values.get("tests") for w in self.weeks)

    @property
    def labels(self) -> list[str]:
        return [w.label for w in self.weeks]

    def series(self, key: str) -> list[float | None]:
        return [w.values.get(key) for w in self.weeks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "timezone": self.tz,
            "generated_at": self.generated_at.isoformat(),
            "metrics": {m.key: {"label": m.label, "kind": m.kind} for m in METRICS},
            "weeks": [w.to_dict() for w in self.weeks],
            "flaky": self.flaky,
            "slowest": self.slowest,
            "routes": self.routes,
            "notes": self.notes,
        }


NONE, MINUS = "\u2013", "\u2212"  # typographic dash and minus, for people to read


def describe_schema_change(change: dict[str, Any]) -> str:
    """``2026-W47: +full_name \u2212name``: keys a route's responses gained and lost."""
    added = ", ".join(change["added"]) or NONE
    removed = ", ".join(change["removed"]) or NONE
    return f"{change['week']}: +{added} {MINUS}{removed}"


def change(metric: Metric, now: float | None, before: float | None) -> float | None:
    """Week-over-week change: a difference (rates in points, others in units)."""
    if now is None or before is None:
        return None
    return round(now - before, 6)


def format_value(metric: Metric | str, value: float | None) -> str:
    kind = metric.kind if isinstance(metric, Metric) else metric
    if value is None:
        return NONE
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "hours":
        return f"{value:.1f} h"
    if kind == "seconds":
        return f"{value / 60:.1f} min" if value >= 120 else f"{value:.1f} s"
    if kind == "ms":
        return f"{value:.0f}"
    return f"{value:,.0f}"


def format_change(metric: Metric, delta: float | None) -> str:
    if delta is None:
        return ""
    if metric.kind == "rate":
        return f"{delta * 100:+.1f} pt"
    if delta == 0:
        return "±0"
    sign = "+" if delta > 0 else MINUS
    return sign + format_value(metric, abs(delta))
