"""The report as text: Markdown for a pull request or ``$GITHUB_STEP_SUMMARY``,
and the compact terminal table of `testmem trends`. No HTML in either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from testmem.memory.markup import md_cell, md_code, md_text
from testmem.memory.report.model import (
    CATEGORIES,
    METRIC,
    NONE,
    Report,
    describe_schema_change,
    format_change,
    format_value,
)

BLOCKS = "▁▂▃▄▅▆▇█"
HEADLINE = (
    "runs",
    "tests",
    "pass_rate",
    "failures",
    "flaky_tests",
    "incidents_new",
    "incidents_open",
    "retries_rescued",
    "latency_p95_ms",
)


def spark(values: Sequence[float | None]) -> str:
    """``▁▃█`` for a series; a gap (space) where a week has no value."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    scale = (len(BLOCKS) - 1) / (high - low) if high > low else 0
    return "".join(" " if v is None else BLOCKS[round((v - low) * scale)] for v in values)


def render_trends(report: Report) -> str:
    """Headline figures: one line each with its sparkline, last week and change."""
    rows = [("figure", "trend", report.labels[-1], "change")]
    for key in HEADLINE:
        metric, week = METRIC[key], report.weeks[-1]
        values = report.series(key)
        rows.append(
            (
                metric.label,
                spark(values),
                format_value(metric, week.values[key]),
                format_change(metric, week.change[key]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    first = f"{report.labels[0]} → {report.labels[-1]} ({len(report.weeks)} weeks, {report.tz})"
    note = "\nNo data yet: no test results in these weeks." if report.empty else ""
    return "\n".join([first, *lines]) + note


def render_markdown(report: Report) -> str:
    week = report.weeks[-1]
    parts = [
        f"## Test suite report {report.labels[0]} \u2013 {report.labels[-1]}",
        f"Time zone {md_text(report.tz)}. Store {md_code(report.store)}.",
    ]
    if report.empty:
        parts.append("**No data yet:** no test results in these weeks.")
    parts += [_summary(week), _weekly(report), _categories(report)]
    parts += [_flaky(report), _slowest(report), _routes(report)]
    parts.append("**Definitions.** " + " ".join(report.notes))
    return "\n\n".join(p for p in parts if p) + "\n"


def _summary(week: Any) -> str:
    bits = []
    for key in ("runs", "tests", "pass_rate", "failures", "incidents_open", "retries_rescued"):
        metric = METRIC[key]
        delta = format_change(metric, week.change[key])
        bits.append(
            f"{metric.label}: **{format_value(metric, week.values[key])}**"
            + (f" ({delta})" if delta else "")
        )
    return f"**{week.label}** — " + " · ".join(bits)


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(md_cell(c) for c in cells) + " |"

    align = "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    return "\n".join([line(columns), align, *(line(r) for r in rows)])


_TESTS_TABLE = ("runs", "tests", "pass_rate", "failures", "flaky_tests", "retries_rescued")
_ACTIONS_TABLE = (
    "incidents_new",
    "incidents_resolved",
    "incidents_open",
    "mttr_hours",
    "defects_filed",
    "heals_proposed",
    "heals_applied",
    "tests_generated",
    "retry_wait_s",
)


def _weekly(report: Report) -> str:
    return "\n\n".join(
        [
            "### Every week",
            _week_table(report, _TESTS_TABLE),
            "### Incidents, defects, heals",
            _week_table(report, _ACTIONS_TABLE),
        ]
    )


def _week_table(report: Report, keys: Sequence[str]) -> str:
    columns = ["Week", *(METRIC[k].label for k in keys)]
    rows = [
        [w.label, *(format_value(METRIC[k], w.values[k]) for k in keys)]
        for w in reversed(report.weeks)
    ]
    trend = ["trend", *(spark(report.series(k)) for k in keys)]
    return _md_table(columns, [trend, *rows])


def _categories(report: Report) -> str:
    columns = ["Week", *CATEGORIES]
    rows = [
        [w.label, *(format_value("count", w.values[f"failures_{c}"]) for c in CATEGORIES)]
        for w in reversed(report.weeks)
    ]
    return "### Failures by category\n\n" + _md_table(columns, rows)


def _flaky(report: Report) -> str:
    parts = []
    for key, title in (
        ("top", "Flakiest"),
        ("newly", "Newly flaky"),
        ("no_longer", "No longer flaky"),
    ):
        tests = report.flaky[key]
        rows = [
            [
                md_code(t["nodeid"]),
                str(t["runs"]),
                str(t["failed"]),
                str(t["rescued"]),
                f"{(t['flakiness'] or 0) * 100:.0f}%",
            ]
            for t in tests
        ]
        body = (
            _md_table(["Test", "Runs", "Failed first", "Rescued", "Flakiness"], rows)
            if rows
            else "None."
        )
        parts.append(f"### {title} tests ({report.labels[-1]})\n\n{body}")
    return "\n\n".join(parts)


def _slowest(report: Report) -> str:
    rows = [
        [
            md_code(t["nodeid"]),
            f"{t['mean_s']:.3f} s" if t["mean_s"] is not None else NONE,
            "" if t["change"] is None else f"{t['change'] * 100:+.0f}%",
            spark(t["weekly_mean_s"]),
        ]
        for t in report.slowest
    ]
    body = _md_table(["Test", "Mean", "vs week before", "Trend"], rows) if rows else "No tests ran."
    return f"### Slowest tests\n\n{body}"


def _routes(report: Report) -> str:
    rows = [
        [
            md_code(r["route"]),
            f"{r['weekly_requests'][-1]:,}",
            format_value("rate", r["weekly_error_rate"][-1]),
            format_value("ms", r["weekly_p50_ms"][-1]),
            format_value("ms", r["weekly_p95_ms"][-1]),
            spark(r["weekly_p95_ms"]),
            md_text("; ".join(describe_schema_change(c) for c in r["schema_changes"]) or "none"),
        ]
        for r in report.routes
    ]
    columns = ["Route", "Requests", "Errors", "p50 ms", "p95 ms", "p95 trend", "Schema changes"]
    body = _md_table(columns, rows) if rows else "No HTTP exchanges recorded."
    return f"### Routes ({report.labels[-1]})\n\n{body}"
