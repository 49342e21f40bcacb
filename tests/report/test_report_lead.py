"""Markdown and HTML lead with the answer: verdict, before/after table, why, then stages in fitting words."""

from __future__ import annotations

import re

import pytest

from crowguard.report.formats import get_format
from crowguard.report.model import Report, StageResult
from tests.report.gate_report import gate_report

FILE_SCAN_WORDING = "no known-unsafe construct"


def test_markdown_order_verdict_table_why_stages() -> None:
    md = get_format("markdown").render(gate_report(passed=False))
    assert md.startswith("# crowguard gate: FAIL (exit 1)\n")
    table, why, first_stage = md.index("| | before sanitizing | after sanitizing |"), md.index("**Why:**"), \
        md.index("## pull")
    assert table < why < first_stage
    assert "| attack success rate (triggered prompts) | 0.92 | 0.03 |" in md
    assert "| accuracy under trigger | 0.1 | 0.77 |" in md
    assert "| behaviour scan / re-scan | flagged: 1 backdoor finding (worst high) | no trigger found |" in md
    assert "- CG-BACKDOOR-ATTACK-SUCCESS (high) the model still follows the trigger" in md


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_eval_stages_do_not_use_file_scan_wording(fmt: str) -> None:
    text = get_format(fmt).render(gate_report())
    sections = re.split(r"^## |<h2>", text, flags=re.M)
    for section in sections:
        name = section.split(" ", 1)[0]
        if name.startswith("eval") or name in ("sanitize", "utility", "attack-success", "sign", "behaviour-rescan"):
            assert FILE_SCAN_WORDING not in section, name
    assert FILE_SCAN_WORDING in next(s for s in sections if s.startswith("pull"))
    assert "no trigger candidate moved the model away" in next(
        s for s in sections if s.startswith("behaviour-rescan"))


def test_behaviour_location_has_its_own_column() -> None:
    md = get_format("markdown").render(gate_report())
    assert "| severity | rule | file | location | finding | remediation |" in md
    assert "| high | `CG-BACKDOOR-LAYER-INCONSISTENCY` |  | layer pair 5, prompt token -2 |" in md
    html = get_format("html").render(gate_report())
    assert "<th>file</th><th>location</th>" in html
    assert ('<td class="mono"></td><td class="mono">layer pair 5, prompt token -2</td>') in html


def test_an_unsanitized_evaluation_has_one_column() -> None:
    report = gate_report()
    stages = tuple(s for s in report.stages if s.name not in ("eval-before", "behaviour-rescan", "sanitize"))
    stages = tuple(StageResult(name="eval", metrics=s.metrics) if s.name == "eval-after" else s for s in stages)
    md = get_format("markdown").render(Report(**{**report.__dict__, "stages": stages}))
    assert "| | measured |" in md and "| behaviour scan | flagged: 1 backdoor finding (worst high) |" in md


def test_a_plain_scan_has_no_comparison_table() -> None:
    report = gate_report()
    stages = tuple(s for s in report.stages if s.name in ("pull", "file-scan"))
    md = get_format("markdown").render(Report(**{**report.__dict__, "stages": stages}))
    assert "before sanitizing" not in md and "measured" not in md and "**Why:**" in md
