"""Inline SVG charts made in Python: a report needs no plotting library and no network.

Every function returns one ``<svg>`` element as text, with ``role="img"`` and a ``<title>`` so
screen readers and tests can find it; all text is escaped (ids come from clients).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

__all__ = ["PALETTE", "bar_chart", "line_chart"]

PALETTE = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2"]
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 48, 40  # TOP: the title, then the legend, above the plot

Series = Sequence[tuple[float, float]]


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def _empty(title: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 80" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="{WIDTH / 2}" y="45" text-anchor="middle" fill="#666">{escape(title)}: '
        "no data</text></svg>"
    )


def line_chart(
    series: Mapping[str, Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
) -> str:
    """Step lines of ``(x, y)`` points, one per named series, on shared axes starting at
    y = 0: counts hold their value until the next point (a collaboration count does not slope
    from one event to the next). ``x_range``: the x axis's ends (default: the data's), so
    charts of one run can share a time axis."""
    points = [p for line in series.values() for p in line]
    if not points:
        return _empty(title)
    x0, x1 = x_range or (min(p[0] for p in points), max(p[0] for p in points))
    y1 = max(max(p[1] for p in points), 1.0)
    if x1 == x0:
        x1 = x0 + 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - y / y1 * plot_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="18" font-weight="bold">{escape(title)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):  # light grid with the value at each line
        y = sy(y1 * fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_number(y1 * fraction)}</text>"
        )
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{_number(x0)}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{_number(x1)}</text>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    for index, (name, line) in enumerate(series.items()):
        color = PALETTE[index % len(PALETTE)]
        steps: list[tuple[float, float]] = []
        for x, y in line:
            if steps:
                steps.append((x, steps[-1][1]))
            steps.append((x, y))
        if steps and steps[-1][0] < x1:  # the last value holds to the end of the axis
            steps.append((x1, steps[-1][1]))
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in steps)
        parts.append(
            f'<polyline class="series" data-name="{escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{path}"/>'
        )
        legend_x = LEFT + 10 + index * 150
        parts.append(
            f'<rect x="{legend_x}" y="26" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="35">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, value_label: str) -> str:
    """Horizontal bars, one per ``(label, value)``, in the given order."""
    if not bars:
        return _empty(title)
    row = 22
    height = TOP + row * len(bars) + 24
    label_w = 220
    top_value = max(max(value for _, value in bars), 1.0)
    plot_w = WIDTH - label_w - RIGHT - 40
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="18" font-weight="bold">{escape(title)} ({escape(value_label)})</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = TOP + index * row
        width = 0.0 if not math.isfinite(value) else max(value, 0.0) / top_value * plot_w
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(short)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{width:.1f}" height="16" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {_number(value)}</title></rect>'
            f'<text x="{label_w + width + 6:.1f}" y="{y + 15}">{_number(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
