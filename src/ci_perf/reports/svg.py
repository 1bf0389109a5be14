"""Inline SVG line charts, drawn in Python so the HTML report needs no script and no network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 40  # margins around the plot area


@dataclass(frozen=True)
class Series:
    label: str
    color: str  # a CSS colour literal chosen by us, never user text
    points: Sequence[tuple[float, float]]  # (x, y)


def nice_max(value: float) -> float:
    """The next 'round' number (1, 2, 2.5, 5 × 10^n) at or above value, for the y axis top."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _axes(x_max: float, y_max: float, unit: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = []
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        out.append(f'<line class="grid" x1="{LEFT}" y1="{_num(y)}" x2="{WIDTH - RIGHT}" y2="{_num(y)}"/>')
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end">{_num(y_max * i / 4)}</text>'
        )
    for i in range(5):
        x = LEFT + plot_w * i / 4
        out.append(
            f'<text class="tick" x="{_num(x)}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{_num(x_max * i / 4)}s</text>"
        )
    out.append(f'<text class="tick" x="{LEFT}" y="{TOP - 8}">{escape(unit)}</text>')
    return out


def line_chart(title: str, unit: str, series: Sequence[Series], x_max: float | None = None) -> str:
    """One chart; x is elapsed seconds from 0 to the last point (or to x_max, so that several charts
    share one time axis; later points are left out), y from 0 to a round maximum."""
    if x_max:
        series = [Series(s.label, s.color, [(x, y) for x, y in s.points if x <= x_max]) for s in series]
    drawn = [s for s in series if s.points]
    if not drawn:
        return f'<p class="empty">{escape(title)}: no data over time.</p>'
    x_max = x_max or max(x for s in drawn for x, _ in s.points) or 1.0
    y_max = nice_max(max(y for s in drawn for _, y in s.points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text class="title" x="{WIDTH / 2:g}" y="16" text-anchor="middle">{escape(title)}</text>',
        *_axes(x_max, y_max, unit),
    ]
    for i, s in enumerate(drawn):
        coords = " ".join(
            f"{_num(LEFT + plot_w * x / x_max)},{_num(TOP + plot_h - plot_h * y / y_max)}" for x, y in s.points
        )
        parts.append(f'<polyline fill="none" stroke="{s.color}" stroke-width="2" points="{coords}"/>')
        lx = LEFT + i * 120
        parts.append(
            f'<rect x="{lx}" y="{HEIGHT - 14}" width="10" height="10" fill="{s.color}"/>'
            f'<text class="legend" x="{lx + 14}" y="{HEIGHT - 5}">{escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
