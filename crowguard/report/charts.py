"""Chart specifications that stages put in their metrics, for formats that can draw them.

A stage adds plain-JSON chart specs under ``metrics["charts"]``; the HTML report draws them as
inline SVG, other formats ignore them. Keeping charts as data in the report (not images) means
the JSON report holds the numbers behind every plot.

    {"kind": "bar", "title": ..., "labels": [...], "values": [...], "unit": "bytes"}
    {"kind": "line", "title": ..., "x": [...], "series": {"name": [y, ...]}, "x_label": ..., "y_label": ...}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

CHARTS_KEY = "charts"


def bar_chart(title: str, labels: list[str], values: list[float], *, unit: str = "") -> dict[str, Any]:
    """One bar per label."""
    if len(labels) != len(values):
        raise ValueError(f"bar chart {title!r}: {len(labels)} labels but {len(values)} values")
    return {"kind": "bar", "title": title, "labels": list(labels), "values": [_number(v) for v in values],
            "unit": unit}


def line_chart(title: str, series: Mapping[str, Sequence[float | None]], *, x: list[float] | None = None,
               x_label: str = "", y_label: str = "") -> dict[str, Any]:
    """One line per named series, all over the same x values (0, 1, 2, ... when not given)."""
    lengths = {len(v) for v in series.values()}
    if len(lengths) > 1:
        raise ValueError(f"line chart {title!r}: series have different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    xs = list(range(count)) if x is None else [_number(v) for v in x]
    if len(xs) != count:
        raise ValueError(f"line chart {title!r}: {len(xs)} x values for series of length {count}")
    return {"kind": "line", "title": title, "x": xs,
            "series": {name: [_number(v) for v in values] for name, values in series.items()},
            "x_label": x_label, "y_label": y_label}


def _number(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a missing point (None, NaN, inf) is null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
