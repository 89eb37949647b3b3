"""Inline SVG charts: lines, bars and stacked bars, with no script and no font.

Charts scale to their container (``viewBox`` + ``width: 100%``), so one file
reads on a laptop and a phone. Each point carries a ``<title>`` tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 10, 26
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#6b7280")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str


def chart(
    labels: Sequence[str],
    series: Sequence[Series],
    kind: str = "line",
    fmt: str = "{:,.0f}",
    ceiling: float | None = None,
) -> str:
    """One chart: ``kind`` is line, bars (side by side) or stacked."""
    top = ceiling or _nice_max(_peak(series, stacked=kind == "stacked"))
    parts = [_grid(top, fmt), _x_labels(labels)]
    if kind == "line":
        parts += [_line(s, len(labels), top, fmt, labels) for s in series]
    else:
        parts += _bars(labels, series, top, fmt, stacked=kind == "stacked")
    body = "".join(parts)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def sparkline(values: Sequence[float | None], color: str = PALETTE[0]) -> str:
    """A tiny line for a table cell."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    step = 100 / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{18 - 16 * ((v - low) / (high - low) if high > low else 0.5):.1f}"
        for i, v in enumerate(values)
        if v is not None
    )
    return (
        '<svg class="spark" viewBox="0 0 100 20" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg"><polyline points="{points}" fill="none" '
        f'stroke="{color}" stroke-width="1.5" vector-effect="non-scaling-stroke"/></svg>'
    )


def _peak(series: Sequence[Series], stacked: bool) -> float:
    if stacked:
        columns = zip(*(s.values for s in series), strict=True)
        return max((sum(v or 0 for v in col) for col in columns), default=0)
    return max((v for s in series for v in s.values if v is not None), default=0)


def _nice_max(value: float) -> float:
    """A round axis top at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    while magnitude * 10 < value:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= value:
            return factor * magnitude
    return 10 * magnitude


def _y(value: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + span * (index + 0.5) / max(count, 1)


def _grid(top: float, fmt: str) -> str:
    lines = []
    for fraction in (0, 0.5, 1):
        y = _y(top * fraction, top)
        lines.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(fmt.format(top * fraction))}</text>"
        )
    return "".join(lines)


def _x_labels(labels: Sequence[str]) -> str:
    every = max(1, len(labels) // 8)  # at most ~8 labels, so they never overlap
    return "".join(
        f'<text x="{_x(i, len(labels)):.1f}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">'
        f"{escape(label[-3:] if len(labels) > 4 else label)}</text>"
        for i, label in enumerate(labels)
        if (len(labels) - 1 - i) % every == 0  # counted from the newest week, always shown
    )


def _line(series: Series, count: int, top: float, fmt: str, labels: Sequence[str]) -> str:
    points = [(i, v) for i, v in enumerate(series.values) if v is not None]
    path = " ".join(f"{_x(i, count):.1f},{_y(v, top):.1f}" for i, v in points)
    dots = "".join(
        f'<circle cx="{_x(i, count):.1f}" cy="{_y(v, top):.1f}" r="2.5" fill="{series.color}">'
        f"<title>{escape(labels[i])} {escape(series.name)}: {escape(fmt.format(v))}</title>"
        "</circle>"
        for i, v in points
    )
    line = (
        f'<polyline points="{path}" fill="none" stroke="{series.color}" stroke-width="2"/>'
        if len(points) > 1
        else ""
    )
    return line + dots


def _bars(
    labels: Sequence[str], series: Sequence[Series], top: float, fmt: str, stacked: bool
) -> list[str]:
    count = len(labels)
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1) * 0.8
    width = slot if stacked else slot / max(len(series), 1)
    bars = []
    for i, label in enumerate(labels):
        base = 0.0
        for k, s in enumerate(series):
            value = s.values[i] or 0
            if value <= 0:
                continue
            x = _x(i, count) - slot / 2 + (0 if stacked else k * width)
            y0, y1 = _y(base + value, top), _y(base, top)
            bars.append(
                f'<rect x="{x:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{s.color}"><title>{escape(label)} {escape(s.name)}: '
                f"{escape(fmt.format(value))}</title></rect>"
            )
            base = base + value if stacked else 0.0
    return bars
