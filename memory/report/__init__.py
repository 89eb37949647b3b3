"""Weekly trend reports from the event log: figures per ISO week with the
change against the week before, rendered as HTML, Markdown, JSON or a terminal
table of sparklines.

    report = weekly_report(History(store), weeks=8, tz="Europe/Paris")
    save(render(report, "html"), Path("reports/weekly.html"))
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from testmem.memory.markup import json_text
from testmem.memory.report.model import ENV_TZ, Period, Report, ReportError, resolve_tz
from testmem.memory.report.text import render_markdown, render_trends

if TYPE_CHECKING:
    from testmem.memory.query import History

FORMATS = ("html", "md", "json")
ENGINES = ("duckdb", "ray")

__all__ = [
    "FORMATS",
    "Report",
    "ReportError",
    "render",
    "render_trends",
    "save",
    "weekly_report",
]


def weekly_report(
    history: History,
    weeks: int = 8,
    since: date | None = None,
    until: date | None = None,
    tz: str | None = None,
    engine: str = "duckdb",
) -> Report:
    """The figures of the ISO weeks from ``since`` (or ``weeks`` back) to ``until``
    (default: this week), in time zone ``tz`` (default ``$TESTMEM_TZ``, else UTC),
    the log scanned by ``engine``: ``duckdb`` here, or ``ray`` on ``$RAY_ADDRESS``."""
    from testmem.memory.report.figures import build_report  # DuckDB only when a report is made

    if engine not in ENGINES:
        raise ReportError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    period = Period.of(weeks, since, until, resolve_tz(tz or os.environ.get(ENV_TZ)))
    if engine == "ray":
        from testmem.memory.report.ray_engine import ray_engine

        return build_report(history, period, ray_engine(history.store, period))
    return build_report(history, period)


def render(report: Report, fmt: str) -> str:
    if fmt == "html":
        from testmem.memory.report.html import render_html

        return render_html(report)
    if fmt == "md":
        return render_markdown(report)
    if fmt == "json":
        return json_text(report.to_dict(), indent=1, default=str) + "\n"
    raise ReportError(f"unknown report format {fmt!r} (choose from {', '.join(FORMATS)})")


def save(text: str, path: Path) -> None:
    """Write a rendered report to ``path``, creating missing parent directories
    (CI jobs name a report under a folder that does not exist yet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
