"""After sanitizing, a scan's findings say what fits then, and the stderr summary names each finding's stage."""

from __future__ import annotations

from crowguard.pipeline.sanitize import AFTER_SANITIZING, _after_sanitizing
from crowguard.report.model import Finding, Report, Severity, StageName, StageResult
from crowguard.scan.behaviour import BehaviourScanResult, TriggerCandidate

FINDING = Finding(rule_id="CG-BACKDOOR-TRIGGER", severity=Severity.HIGH, title="trigger", evidence="e",
                  remediation="Remove the backdoor with `crowguard sanitize` and scan again")


def test_a_rescan_finding_does_not_advise_sanitizing_again_blindly() -> None:
    scan = BehaviourScanResult(StageResult(name=StageName.BEHAVIOUR_SCAN, findings=(FINDING,)),
                               (TriggerCandidate("BadMagic", (17,)),))
    after = _after_sanitizing(scan, StageName.BEHAVIOUR_RESCAN)
    assert after.stage.name == "behaviour-rescan" and after.candidates == scan.candidates and after.flagged
    (finding,) = after.stage.findings
    assert finding.remediation == AFTER_SANITIZING and "did not remove" in finding.remediation
    assert finding.rule_id == FINDING.rule_id and finding.evidence == FINDING.evidence


def test_the_summary_names_the_stage_of_each_finding() -> None:
    import io

    from rich.console import Console

    from crowguard.cli import guard, output

    report = Report(command="sanitize", stages=(
        StageResult(name=StageName.BEHAVIOUR_SCAN, findings=(FINDING,)),
        StageResult(name=StageName.BEHAVIOUR_RESCAN, findings=(FINDING,))))
    buffer = io.StringIO()
    original = output.stderr
    output.stderr = Console(file=buffer, width=200, color_system=None)
    try:
        output.print_summary(report)
    finally:
        output.stderr = original
    rows = [line for line in buffer.getvalue().splitlines() if "CG-BACKDOOR-TRIGGER" in line]
    assert len(rows) == 2 and "behaviour-scan" in rows[0] and "behaviour-rescan" in rows[1]
    assert guard.stderr is original
