"""The HTML report: self-contained, escaped, charts and inventory drawn; opens in headless Chromium."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from crowguard.report.charts import bar_chart, line_chart
from crowguard.report.formats import get_format
from crowguard.report.model import FileEntry, Finding, Report, Severity, Source, StageResult, Verdict
from tests.report.gate_report import gate_report
from tests.report.png_pixels import read_png

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _report() -> Report:
    hostile = Finding(rule_id="CG-PICKLE-DANGEROUS-IMPORT", severity=Severity.CRITICAL,
                      title="pickle imports posix.system", file="<script>alert(1)</script>.bin",
                      evidence='evidence with <img src="https://evil.example/x.png"> in it', remediation="delete it",
                      details={"module": "posix"})
    low = Finding(rule_id="CG-PATH-EXEC-BIT", severity=Severity.LOW, title="data file marked executable",
                  file="config.json", evidence="json", remediation="chmod -x")
    profile = line_chart("Layer consistency", {"clean": [0.9, 0.95, None, 0.97], "trigger": [0.9, 0.5, 0.6, 0.7]},
                         x_label="layer", y_label="cosine")
    stage = StageResult(name="file-scan", findings=(hostile, low), metrics={
        "files": 2, "read_mb_per_s": 812.5,
        "charts": [bar_chart("Bytes per format", ["pickle", "json"], [1024, 20], unit="bytes"), profile,
                   {"kind": "bar", "title": "broken"}]})
    files = (FileEntry(path="<script>alert(1)</script>.bin", size=1024, sha256="ab" * 32, format="pickle"),
             FileEntry(path="config.json", size=20, sha256="cd" * 32, format="json"))
    verdict = Verdict(passed=False, exit_code=1, policy="default", fail_on=Severity.HIGH,
                      counts={s: 0 for s in Severity} | {Severity.CRITICAL: 1, Severity.LOW: 1},
                      reasons=("CG-PICKLE-DANGEROUS-IMPORT (critical) pickle imports posix.system",))
    return Report(command="scan", source=Source(reference="/models/m", files=files), stages=(stage,), verdict=verdict)


def test_html_is_self_contained_and_escaped() -> None:
    html = get_format("html").render(_report())
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;.bin" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)  # the hostile <img> stays text
    assert "<link" not in html and "@import" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert html.count("<svg") == 4  # severity, two stage charts, largest files
    assert "could not be drawn" in html  # the malformed chart spec is reported, not fatal
    assert "FAIL (exit 1)" in html and "ab" * 32 in html and "812.5" in html


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no Chromium binary on PATH (Debian: apt-get install chromium); the HTML render test needs it")


def test_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    page = tmp_path / "report.html"
    page.write_text(get_format("html").render(_report()), encoding="utf-8")
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "FAIL (exit 1)" in dom and "CG-PICKLE-DANGEROUS-IMPORT" in dom and "File inventory" in dom
    assert dom.count("<svg") == 4 and "<polyline" in dom
    assert "alert(1)" in dom and "<script>alert" not in dom  # shown as text, never run
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


_GEOMETRY = """<script>
window.addEventListener('load', () => {
  const out = {};
  for (const id of ['verdict', 'before-after', 'why']) {
    const r = document.getElementById(id).getBoundingClientRect();
    out[id] = [r.top, r.bottom, r.width];
  }
  document.title = 'GEOMETRY' + JSON.stringify(out);
});
</script>"""


def test_banner_and_before_after_table_are_above_the_fold(tmp_path: Path) -> None:
    """At 1280x800 the verdict banner and the before/after table show without scrolling."""
    browser = _chromium()
    html = get_format("html").render(gate_report(passed=True))
    order = [html.index(mark) for mark in ('id="verdict"', 'id="before-after"', 'id="why"', "<h2>pull")]
    assert order == sorted(order)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,800",
             "--hide-scrollbars"]
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp_path / "above_the_fold.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120,
                   check=True)
    # geometry: the same page with the CSP lifted and a script that measures the elements (test copy only)
    probe = tmp_path / "probe.html"
    probe.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
                     .replace("</body>", _GEOMETRY + "</body>"), encoding="utf-8")
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=2000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    geometry = json.loads(re.search(r"<title>GEOMETRY(.*?)</title>", dom).group(1).replace("&quot;", '"'))
    for element in ("verdict", "before-after"):
        top, bottom, width = geometry[element]
        assert 0 <= top < bottom <= 800 and width > 300, (element, geometry)
    rows = read_png(shot)
    assert (len(rows[0]), len(rows)) == (1280, 800)
    banner_top, banner_bottom, _ = geometry["verdict"]
    green = sum(1 for row in rows[int(banner_top):int(banner_bottom)] for px in row if px == (0x15, 0x80, 0x3D))
    assert green > 10_000  # the PASS banner is painted in the first screen
    table_top, table_bottom, _ = geometry["before-after"]
    ink = sum(1 for row in rows[int(table_top):int(table_bottom)] for px in row if max(px) < 100)
    assert ink > 500  # the table's text is painted there too
