"""What a finding advises fits its stage: before sanitizing, sanitize; once sanitized, the input's finding points at
the scans after sanitizing, and what those (and the attack-success check) still find says reject or sanitize harder.
The stderr summary names each finding's stage."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from crowguard.evaluate import EvalResult
from crowguard.evaluate.result import SetResult
from crowguard.pipeline import gate as gate_module
from crowguard.pipeline import rounds as rounds_module
from crowguard.pipeline import sanitize as sanitize_module
from crowguard.pipeline.checks import attack_success_check
from crowguard.pipeline.gate import GateRequest, run_gate
from crowguard.pipeline.remediation import (
    AFTER_SANITIZING,
    AFTER_SANITIZING_FIXED_ANSWER,
    ANSWERED_BY_SANITIZING,
    BEFORE_SANITIZING_ATTACK,
    after_sanitizing,
    answered_by_sanitizing,
)
from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeRun, _after_sanitizing, run_sanitize
from crowguard.policy import Policy
from crowguard.report.model import Finding, Report, Severity, StageName, StageResult
from crowguard.scan.behaviour import BehaviourScanResult, TriggerCandidate
from crowguard.scan.behaviour.findings import FIXED_ANSWER_RULE_ID, REMEDIATION

FINDING = Finding(rule_id="CG-BACKDOOR-TRIGGER", severity=Severity.HIGH, title="trigger", evidence="e",
                  remediation=REMEDIATION)
FLAGGED = BehaviourScanResult(StageResult(name=StageName.BEHAVIOUR_SCAN, findings=(FINDING,)),
                              (TriggerCandidate("BadMagic", (17,)),))


def test_a_rescan_finding_does_not_advise_sanitizing_again_blindly() -> None:
    after = _after_sanitizing(FLAGGED, StageName.BEHAVIOUR_RESCAN)
    assert after.stage.name == "behaviour-rescan" and after.candidates == FLAGGED.candidates and after.flagged
    (finding,) = after.stage.findings
    assert finding.remediation == AFTER_SANITIZING and "did not remove the trigger" in finding.remediation
    assert finding.rule_id == FINDING.rule_id and finding.evidence == FINDING.evidence


def test_a_fixed_answer_after_sanitizing_may_be_damage_as_well() -> None:
    fixed = FINDING.model_copy(update={"rule_id": FIXED_ANSWER_RULE_ID})
    stage = after_sanitizing(StageResult(name=StageName.BEHAVIOUR_SCAN, findings=(fixed, FINDING)),
                             StageName.BEHAVIOUR_RECHECK)
    assert stage.name == "behaviour-recheck"
    assert [f.remediation for f in stage.findings] == [AFTER_SANITIZING_FIXED_ANSWER, AFTER_SANITIZING]


def test_the_inputs_finding_points_at_the_scans_after_sanitizing() -> None:
    stage = answered_by_sanitizing(FLAGGED.stage)
    (finding,) = stage.findings
    assert stage.name == "behaviour-scan" and finding.remediation == ANSWERED_BY_SANITIZING
    assert "crowguard sanitize" in FINDING.remediation and "crowguard sanitize" not in finding.remediation
    assert finding.model_copy(update={"remediation": FINDING.remediation}) == FINDING


def _evaluated(asr_hits: int) -> EvalResult:
    triggered = SetResult(name="triggered", prompts=10, answered=10, keyword_hits=asr_hits, target_hits=None,
                          correct=None)
    clean = SetResult(name="clean", prompts=10, answered=10, keyword_hits=0, target_hits=None, correct=None)
    return EvalResult(model="m", settings={}, triggered=triggered, clean=clean, perplexity=None, perplexity_tokens=0,
                      seconds=0.0)


def test_attack_success_advice_depends_on_whether_the_model_was_sanitized() -> None:
    sanitized = attack_success_check(_evaluated(9), Policy(), sanitized=True)
    received = attack_success_check(_evaluated(9), Policy(), sanitized=False)
    assert sanitized.findings[0].remediation == AFTER_SANITIZING
    assert received.findings[0].remediation == BEFORE_SANITIZING_ATTACK and "crowguard sanitize" in \
        received.findings[0].remediation
    assert not attack_success_check(_evaluated(0), Policy(), sanitized=True).findings


def test_the_gate_rewrites_the_inputs_scan_once_it_sanitizes(tiny_model_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The wiring, with the scan and the training replaced: the gate's own scan stage gets the new advice."""
    rescan = _after_sanitizing(FLAGGED, StageName.BEHAVIOUR_RESCAN)

    def fake_sanitize(request: SanitizeRequest, progress: Any) -> SanitizeRun:
        shutil.copytree(tiny_model_dir, request.out)
        report = Report(command="sanitize", stages=(StageResult(name=StageName.SANITIZE), rescan.stage))
        return SanitizeRun(report=report, outcome=None, rescan=rescan)

    monkeypatch.setattr(gate_module, "behaviour_scan", lambda *args, **kwargs: FLAGGED)
    monkeypatch.setattr(gate_module, "run_sanitize", fake_sanitize)
    report = run_gate(GateRequest(model=str(tiny_model_dir), out=tmp_path / "out",
                                  policy=Policy(require_signature=False)), write_reports=lambda report, folder: None)
    assert [f.remediation for f in report.stage(StageName.BEHAVIOUR_SCAN).findings] == [ANSWERED_BY_SANITIZING]
    assert [f.remediation for f in report.stage(StageName.BEHAVIOUR_RESCAN).findings] == [AFTER_SANITIZING]
    assert report.verdict is not None and report.verdict.exit_code == 1
    assert any(r.endswith("[behaviour-rescan]") for r in report.verdict.reasons)


def test_sanitize_rewrites_its_own_scan_of_the_input(tiny_model_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    class Outcome:
        clean = None

        def metrics(self) -> dict[str, Any]:
            return {"method": "crow"}

    monkeypatch.setattr(sanitize_module, "behaviour_scan", lambda *args, **kwargs: FLAGGED)
    monkeypatch.setattr(sanitize_module, "measure_candidates", lambda *args, **kwargs: FLAGGED)
    monkeypatch.setattr(rounds_module, "sanitize_model", lambda *args, **kwargs: Outcome())
    run = run_sanitize(SanitizeRequest(model=tiny_model_dir, out=tmp_path / "out",
                                       behaviour=sanitize_module.BehaviourScans()))
    remediations = {s.name: [f.remediation for f in s.findings] for s in run.report.stages if s.findings}
    assert remediations["behaviour-scan"] == [ANSWERED_BY_SANITIZING]
    assert remediations["behaviour-rescan"] == remediations["behaviour-recheck"] == [AFTER_SANITIZING]
    assert run.report.verdict is not None and run.report.verdict.exit_code == 1


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
