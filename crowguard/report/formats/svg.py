"""Small, dependency-free SVG charts for the HTML report: horizontal bars and lines.

Every text is escaped; output is a standalone ``<svg>`` element with inline styles, so the report
stays one self-contained file. Missing points (``None``) break a line instead of faking a value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def render_bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *, unit: str = "",
                     colors: Sequence[str] | None = None, width: int = 640) -> str:
    """Horizontal bars, one per label, value printed at the end of each bar."""
    row, left, right, top = 22, 170, 110, 28
    height = top + row * max(len(labels), 1) + 8
    numbers = [v or 0.0 for v in values]
    peak = max(numbers, default=0.0) or 1.0
    span = width - left - right
    parts = [_open(width, height, title), f'<text x="0" y="16" {_FONT} font-weight="bold">{escape(title)}</text>']
    for i, (label, value) in enumerate(zip(labels, numbers, strict=True)):
        y = top + i * row
        bar = max(1.0, span * value / peak) if value > 0 else 0.0
        color = (colors or PALETTE)[i % len(colors or PALETTE)]
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" {_FONT}>{escape(_clip(label, 26))}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row - 6}" fill="{color}">'
                     f'<title>{escape(label)}: {escape(format_value(value, unit))}</title></rect>')
        parts.append(f'<text x="{left + bar + 6:.1f}" y="{y + 14}" {_FONT}>{escape(format_value(value, unit))}</text>')
    if not labels:
        parts.append(f'<text x="{left}" y="{top + 14}" {_FONT}>no data</text>')
    return "".join(parts) + "</svg>"


def render_line_chart(title: str, x: Sequence[float], series: dict[str, Sequence[float | None]], *,
                      x_label: str = "", y_label: str = "", width: int = 640, height: int = 300) -> str:
    """One polyline per series over shared x values, with axes, ticks and a legend."""
    left, right, top, bottom = 56, 16, 28, 44 + 16 * ((len(series) + 2) // 3)
    points = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
    y_low, y_high = _range(points)
    x_low, x_high = _range([float(v) for v in x])
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + plot_w * (v - x_low) / (x_high - x_low)

    def sy(v: float) -> float:
        return top + plot_h * (1 - (v - y_low) / (y_high - y_low))

    parts = [_open(width, height, title), f'<text x="0" y="16" {_FONT} font-weight="bold">{escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>']
    for tick in _ticks(y_low, y_high):
        parts.append(f'<text x="{left - 4}" y="{sy(tick) + 4:.1f}" text-anchor="end" {_FONT}>{tick:.3g}</text>')
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" '
                     'stroke="#e5e7eb"/>')
    for tick in _ticks(x_low, x_high):
        parts.append(f'<text x="{sx(tick):.1f}" y="{top + plot_h + 14}" text-anchor="middle" {_FONT}>{tick:.3g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 30}" text-anchor="middle" {_FONT}>'
                 f'{escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2:.1f}" transform="rotate(-90 12 {top + plot_h / 2:.1f})" '
                 f'text-anchor="middle" {_FONT}>{escape(y_label)}</text>')
    for i, (name, values) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        for run in _runs(x, values):
            path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in run)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2">'
                         f'<title>{escape(name)}</title></polyline>')
        lx, ly = left + (i % 3) * (plot_w / 3), top + plot_h + 46 + 16 * (i // 3)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly}" {_FONT}>{escape(_clip(name, 30))}</text>')
    return "".join(parts) + "</svg>"


def format_value(value: float, unit: str = "") -> str:
    """Bytes in binary units, other numbers with three significant digits."""
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or suffix == "TiB":
                return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
            value /= 1024
    return f"{value:.3g}" + (f" {unit}" if unit else "")


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">')


def _range(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if low == high:
        return low - 0.5, high + 0.5
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _runs(x: Sequence[float], values: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for a, b in zip(x, values, strict=True):
        if b is None or not math.isfinite(b):
            runs.append([])
        else:
            runs[-1].append((float(a), float(b)))
    return [r for r in runs if r]


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
