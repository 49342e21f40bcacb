"""Markdown and HTML lead with the answer: verdict, before/after table, why, findings by stage, then stages in
fitting words."""

from __future__ import annotations

import html
import re

import pytest

from crowguard.pipeline.remediation import AFTER_SANITIZING, ANSWERED_BY_SANITIZING
from crowguard.report.formats import get_format
from crowguard.report.formats.summary import scan_result
from crowguard.report.model import Finding, Report, Severity, StageResult
from tests.report.gate_report import TRIGGER, gate_report, surviving_trigger_report

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


GROUPED = ["file-scan", "behaviour-scan", "behaviour-rescan", "behaviour-recheck", "attack-success"]


def _markdown_groups(md: str) -> dict[str, str]:
    """The findings-by-stage section's groups, by the stage name each heading gives."""
    section = md.split("## Findings by stage\n", 1)[1].split("\n## ", 1)[0]
    return {re.search(r"\(`([a-z-]+)`\)", part).group(1): part for part in section.split("### ")[1:]}


def _html_groups(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section class="findings" data-stage="([a-z-]+)">(.*?)</section>', page, flags=re.S))


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_findings_are_grouped_by_stage_in_pipeline_order_with_each_stages_advice(fmt: str) -> None:
    text = get_format(fmt).render(surviving_trigger_report())
    groups = (_markdown_groups if fmt == "markdown" else _html_groups)(text)
    assert list(groups) == GROUPED  # pipeline order; stages without findings (pull, sanitize, ...) have no group
    quoted = html.escape if fmt == "html" else str
    titles = {"file-scan": "File scan", "behaviour-scan": "Behaviour scan of the input model",
              "behaviour-rescan": "Behaviour re-scan of the sanitized model",
              "behaviour-recheck": quoted("Re-check of the input's trigger candidates on the sanitized model"),
              "attack-success": "Attack-success check"}
    for stage, group in groups.items():
        assert titles[stage] in group and "1 finding, worst" in group, stage
    for stage in ("behaviour-scan", "behaviour-rescan", "behaviour-recheck"):  # the same finding, three times
        assert "CG-BACKDOOR-TRIGGER" in groups[stage] and quoted(TRIGGER.evidence) in groups[stage], stage
    assert ANSWERED_BY_SANITIZING in groups["behaviour-scan"] and AFTER_SANITIZING not in groups["behaviour-scan"]
    assert "crowguard sanitize" not in groups["behaviour-scan"]  # the run already did that
    for stage in ("behaviour-rescan", "behaviour-recheck", "attack-success"):
        assert AFTER_SANITIZING in groups[stage] and "did not remove" in groups[stage], stage
        assert ANSWERED_BY_SANITIZING not in groups[stage], stage
    assert "before sanitizing" in groups["behaviour-scan"] and "sanitized model" in groups["behaviour-rescan"]


def test_findings_section_says_so_when_there_are_none() -> None:
    report = gate_report()
    clean = Report(**{**report.__dict__, "stages": tuple(s.model_copy(update={"findings": ()})
                                                           for s in report.stages)})
    assert "## Findings by stage\n\nNo stage reported a finding." in get_format("markdown").render(clean)
    assert "No stage reported a finding." in get_format("html").render(clean)


def test_stage_sections_point_at_the_groups_and_why_names_each_blocking_stage() -> None:
    md = get_format("markdown").render(surviving_trigger_report())
    rescan = md.split("## behaviour-rescan (", 1)[1].split("\n## ", 1)[0]
    assert "1 finding, listed under the findings by stage." in rescan and "| severity |" not in rescan
    why = md.split("**Why:**", 1)[1].split("**Findings by severity", 1)[0]
    assert "- CG-BACKDOOR-TRIGGER (high) Backdoor trigger candidate 'cf' [behaviour-rescan]" in why
    assert "- CG-BACKDOOR-TRIGGER (high) Backdoor trigger candidate 'cf' [behaviour-recheck]" in why
    assert "[behaviour-scan]" not in why  # the input's scan is not what the verdict counts after sanitizing


def test_a_residual_taught_reply_is_named_beside_no_trigger_found() -> None:
    residual = Finding(rule_id="CG-RESIDUAL-TARGET", severity=Severity.MEDIUM, title="t", evidence="e",
                       remediation="r")
    stage = StageResult(name="behaviour-rescan", findings=(residual,))  # type: ignore[arg-type]
    assert scan_result(stage) == "no trigger found; the taught reply survives (medium)"
    md = get_format("markdown").render(Report(command="gate", stages=(StageResult(name="sanitize"), stage)))
    assert "the input's trigger no longer steers it" in md and "sanitizing did not remove these" not in md


def test_the_before_after_table_shows_the_recheck_beside_the_rescan() -> None:
    persisting = Finding(rule_id="CG-BACKDOOR-PERSISTS", severity=Severity.HIGH, title="t", evidence="e",
                         remediation="r")
    stages = (StageResult(name="sanitize"), StageResult(name="eval-before", metrics={"asr": 0.9}),  # type: ignore[arg-type]
              StageResult(name="eval-after", metrics={"asr": 0.0}),  # type: ignore[arg-type]
              StageResult(name="behaviour-rescan"),  # type: ignore[arg-type]
              StageResult(name="behaviour-recheck", findings=(persisting,)))  # type: ignore[arg-type]
    md = get_format("markdown").render(Report(command="gate", stages=stages))
    # a clean re-scan beside a re-check that still finds the trigger: the table must not read as clean
    assert "| re-check of the scan's candidates | - | flagged: 1 backdoor finding (worst high) |" in md
