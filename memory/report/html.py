"""The report as one self-contained HTML file: inline CSS and SVG, no script,
no font, no network. Responsive: cards and charts wrap on a phone."""

from __future__ import annotations

from html import escape
from typing import Any

from testmem.memory.report.model import (
    CATEGORIES,
    METRIC,
    METRICS,
    NONE,
    Report,
    describe_schema_change,
    format_change,
    format_value,
)
from testmem.memory.report.svg import PALETTE, Series, chart, sparkline

CSS = """
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:#111827;background:#f9fafb}main{max-width:1100px;margin:auto;
padding:16px}h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .5em}
.meta{color:#6b7280}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));
gap:10px}.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px}
.card b{display:block;font-size:1.4em}.good{color:#15803d}.bad{color:#b91c1c}.flat{color:#6b7280}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(420px,100%),1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg.chart{width:100%;height:auto;display:block}
.axis{font-size:13px;fill:#6b7280;font-family:inherit}.legend span{margin-right:10px;
font-size:.85em;white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;
margin-right:4px;border-radius:2px}.scroll{overflow-x:auto;background:#fff;border:1px solid
#e5e7eb;border-radius:8px}table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{padding:5px 8px;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;position:sticky;left:0;background:#fff}
td.id{white-space:normal;word-break:break-all;min-width:12em}svg.spark{width:90px;height:18px}
.empty{background:#fffbeb;border:1px solid #fde68a;padding:12px;border-radius:8px}
ul.notes{color:#6b7280;font-size:.85em}
"""


def render_html(report: Report) -> str:
    sections = [_header(report)]
    if report.empty:
        sections.append('<p class="empty">No data yet: no test results in these weeks.</p>')
    sections += [_cards(report), _charts(report), _weekly_table(report)]
    sections += [_flaky(report), _slowest(report), _routes(report), _notes(report)]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>testmem weekly report</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(sections)}</main></body></html>\n"
    )


def _header(report: Report) -> str:
    span = f"{report.labels[0]} \u2013 {report.labels[-1]}" if report.weeks else ""
    return (
        f"<h1>Test suite weekly report</h1><p class=meta>{escape(span)} · "
        f"time zone {escape(report.tz)} · store {escape(report.store)} · generated "
        f"{report.generated_at:%Y-%m-%d %H:%M} UTC</p>"
    )


def _tone(key: str, delta: float | None) -> str:
    better = METRIC[key].better
    if not delta or better == "none":
        return "flat"
    return "good" if (delta > 0) == (better == "up") else "bad"


def _cards(report: Report) -> str:
    week = report.weeks[-1]
    keys = ("runs", "tests", "pass_rate", "failures", "flaky_tests", "incidents_open")
    cards = "".join(
        f'<div class="card">{escape(METRIC[k].label)}<b>{format_value(METRIC[k], week.values[k])}'
        f'</b><span class="{_tone(k, week.change[k])}">'
        f"{escape(format_change(METRIC[k], week.change[k]) or '&nbsp;')}</span></div>"
        for k in keys
    )
    return f"<h2>Week {escape(week.label)}</h2><div class=cards>{cards}</div>"


def _figure(title: str, svg: str, series: list[Series]) -> str:
    legend = "".join(
        f'<span><i style="background:{s.color}"></i>{escape(s.name)}</span>' for s in series
    )
    caption = f"<figcaption>{escape(title)}</figcaption>"
    return f"<figure>{caption}{svg}<div class=legend>{legend}</div></figure>"


def _charts(report: Report) -> str:
    labels = report.labels
    pass_rate = [Series("pass rate %", _percent(report.series("pass_rate")), PALETTE[2])]
    runs = [Series("runs", report.series("runs"), PALETTE[0])]
    failures = [
        Series(c, report.series(f"failures_{c}"), PALETTE[(i + 1) % len(PALETTE)])
        for i, c in enumerate(CATEGORIES)
    ]
    incidents = [
        Series("new", report.series("incidents_new"), PALETTE[1]),
        Series("resolved", report.series("incidents_resolved"), PALETTE[2]),
        Series("open at week end", report.series("incidents_open"), PALETTE[4]),
    ]
    latency = [
        Series("p50 ms", report.series("latency_p50_ms"), PALETTE[0]),
        Series("p95 ms", report.series("latency_p95_ms"), PALETTE[3]),
    ]
    figures = [
        ("Pass rate (%)", chart(labels, pass_rate, "line", "{:.0f}", 100), pass_rate),
        ("Runs", chart(labels, runs, "bars"), runs),
        ("Failures by category", chart(labels, failures, "stacked"), failures),
        ("Incidents", chart(labels, incidents, "line"), incidents),
        ("HTTP latency (ms)", chart(labels, latency, "line"), latency),
    ]
    return "<h2>Trends</h2><div class=charts>" + "".join(_figure(*f) for f in figures) + "</div>"


def _percent(values: list[float | None]) -> list[float | None]:
    return [None if v is None else v * 100 for v in values]


def _weekly_table(report: Report) -> str:
    head = "".join(f"<th>{escape(w.label)}</th>" for w in reversed(report.weeks))
    rows = []
    for metric in METRICS:
        cells = "".join(
            f'<td title="{escape(format_change(metric, w.change[metric.key]))}">'
            f"{format_value(metric, w.values[metric.key])}</td>"
            for w in reversed(report.weeks)
        )
        spark = sparkline(report.series(metric.key))
        rows.append(f"<tr><td>{escape(metric.label)}</td><td>{spark}</td>{cells}</tr>")
    return (
        "<h2>Every week (newest first)</h2><div class=scroll><table>"
        f"<tr><th>Figure</th><th>Trend</th>{head}</tr>{''.join(rows)}</table></div>"
    )


def _table(title: str, columns: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f"<h2>{escape(title)}</h2><p class=meta>{escape(empty)}</p>"
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=id' if i == 0 else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<h2>{escape(title)}</h2><div class=scroll><table><tr>{head}</tr>{body}</table></div>"


def _flaky(report: Report) -> str:
    parts = []
    for key, title in (
        ("top", "Flakiest tests"),
        ("newly", "Newly flaky"),
        ("no_longer", "No longer flaky"),
    ):
        rows = [_flaky_row(t) for t in report.flaky[key]]
        columns = ["Test", "Runs", "Failed first", "Rescued", "Flakiness"]
        parts.append(_table(f"{title} ({report.labels[-1]})", columns, rows, "None this week."))
    return "".join(parts)


def _flaky_row(test: dict[str, Any]) -> list[str]:
    return [
        escape(test["nodeid"]),
        f"{test['runs']:,}",
        f"{test['failed']:,}",
        f"{test['rescued']:,}",
        f"{(test['flakiness'] or 0) * 100:.0f}%",
    ]


def _slowest(report: Report) -> str:
    rows = [
        [
            escape(t["nodeid"]),
            f"{t['mean_s']:.3f} s" if t["mean_s"] is not None else NONE,
            _percent_change(t["change"]),
            sparkline(t["weekly_mean_s"], PALETTE[3]),
        ]
        for t in report.slowest
    ]
    return _table(
        "Slowest tests", ["Test", "Mean", "vs week before", "Trend"], rows, "No tests ran."
    )


def _percent_change(value: float | None) -> str:
    return "" if value is None else f"{value * 100:+.0f}%"


def _routes(report: Report) -> str:
    rows = []
    for r in report.routes:
        changes = "; ".join(describe_schema_change(c) for c in r["schema_changes"])
        rows.append(
            [
                escape(r["route"]),
                f"{r['weekly_requests'][-1]:,}",
                format_value("rate", r["weekly_error_rate"][-1]),
                format_value("ms", r["weekly_p50_ms"][-1]),
                format_value("ms", r["weekly_p95_ms"][-1]),
                sparkline(r["weekly_p95_ms"], PALETTE[3]),
                escape(changes) or "none",
            ]
        )
    columns = ["Route", "Requests", "Errors", "p50 ms", "p95 ms", "p95 trend", "Schema changes"]
    return _table(f"Routes ({report.labels[-1]})", columns, rows, "No HTTP exchanges recorded.")


def _notes(report: Report) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return f"<h2>How these figures are counted</h2><ul class=notes>{items}</ul>"
