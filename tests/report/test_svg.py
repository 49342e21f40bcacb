"""SVG charts and chart specs: numbers become shapes, gaps stay gaps, bad specs are refused."""

import math
import xml.etree.ElementTree as ET

import pytest

from crowguard.report.charts import bar_chart, line_chart
from crowguard.report.formats.svg import format_value, render_bar_chart, render_line_chart

NS = "{http://www.w3.org/2000/svg}"


def test_bar_chart_widths_follow_values() -> None:
    svg = ET.fromstring(render_bar_chart("sizes", ["a", "b<c"], [10, 5], unit="bytes"))
    widths = [float(r.get("width")) for r in svg.iter(f"{NS}rect")]
    assert widths[0] == pytest.approx(2 * widths[1])
    texts = [t.text for t in svg.iter(f"{NS}text")]
    assert "b<c" in texts and "10 B" in texts


def test_line_chart_breaks_at_missing_points() -> None:
    svg = ET.fromstring(render_line_chart("p", [0, 1, 2, 3, 4], {"s": [1.0, 2.0, None, 3.0, 4.0], "t": [1] * 5}))
    lines = [p.get("points").split() for p in svg.iter(f"{NS}polyline")]
    assert [len(points) for points in lines] == [2, 2, 5]


def test_chart_specs_validate_and_drop_non_finite() -> None:
    spec = line_chart("p", {"a": [1.0, math.nan, math.inf]}, x_label="layer")
    assert spec["series"]["a"] == [1.0, None, None] and spec["x"] == [0, 1, 2]
    with pytest.raises(ValueError, match="different lengths"):
        line_chart("p", {"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(ValueError, match="labels"):
        bar_chart("b", ["x"], [1.0, 2.0])


@pytest.mark.parametrize(("value", "unit", "text"), [(512, "bytes", "512 B"), (3 * 1024**3, "bytes", "3.0 GiB"),
                                                     (0.98765, "", "0.988")])
def test_format_value(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text
