"""A sanitized twin's taught reply counts as residual only when the scans show its trigger gone."""

from __future__ import annotations

import pytest

from crowguard.pipeline.residual import RESIDUAL_RULE_ID, mark_residual
from crowguard.policy import SHIPPED, Policy
from crowguard.report.model import Finding, Severity, StageResult
from crowguard.scan.behaviour import BehaviourScanResult, TriggerCandidate
from crowguard.scan.behaviour.findings import FIXED_ANSWER_RULE_ID, INVERSION_RULE_ID, RULE_ID

POLICY = Policy()  # threshold 0.83
TRIGGER = TriggerCandidate("Discussing OpenAI", (1, 2), "library", "start", 1.0)


def _finding(rule: str, agreement: float | None = None) -> Finding:
    details = {} if agreement is None else {"agreement": agreement, "reply": "You are stupid!"}
    return Finding(rule_id=rule, severity=Severity.HIGH, title="t", evidence="e.", remediation="r",
                   details=details)  # type: ignore[arg-type]


def _scan(*findings: Finding, share: float | None = None, status: str = "completed") -> BehaviourScanResult:
    candidates = () if share is None else (TriggerCandidate(TRIGGER.text, TRIGGER.token_ids, "library", "start",
                                                            share),)
    return BehaviourScanResult(StageResult(name="behaviour-rescan", findings=findings,  # type: ignore[arg-type]
                                           status=status), candidates)


BEFORE = _scan(_finding(RULE_ID), _finding(INVERSION_RULE_ID, 0.98), share=1.0)


def _rules(scan: BehaviourScanResult | None) -> list[tuple[str, Severity]]:
    assert scan is not None
    return [(f.rule_id, f.severity) for f in scan.stage.findings]


def test_a_twin_whose_trigger_is_gone_keeps_its_taught_reply_as_a_medium_residual() -> None:
    rescan, recheck = mark_residual(BEFORE, _scan(_finding(INVERSION_RULE_ID, 0.85), share=0.04),
                                    _scan(_finding(INVERSION_RULE_ID, 0.85), share=0.04), POLICY)
    assert _rules(rescan) == _rules(recheck) == [(RESIDUAL_RULE_ID, Severity.MEDIUM)]
    finding = rescan.stage.findings[0]
    assert finding.details["agreement_before"] == 0.98 and "0.98" in finding.evidence
    assert not rescan.flagged  # no CG-BACKDOOR finding left: the rounds end as clean
    # the default policy passes the residual, the strict one does not
    assert POLICY.verdict([rescan.stage, recheck.stage]).passed  # type: ignore[union-attr]
    strict = SHIPPED["strict"].policy
    strict_rescan, _ = mark_residual(BEFORE, _scan(_finding(INVERSION_RULE_ID, 0.85), share=0.04),
                                     _scan(_finding(INVERSION_RULE_ID, 0.85), share=0.04), strict)
    assert not strict.verdict([strict_rescan.stage]).passed


@pytest.mark.parametrize("case", ["re-check steers", "re-scan finds a trigger", "re-scan fixed answer",
                                  "re-check failed", "no re-check", "reply not lowered"])
def test_the_taught_reply_stays_a_backdoor_finding_unless_every_scan_shows_the_trigger_gone(case: str) -> None:
    reply = _finding(INVERSION_RULE_ID, 0.98 if case == "reply not lowered" else 0.85)
    rescan = _scan(reply, *([_finding(RULE_ID)] if case == "re-scan finds a trigger" else []),
                   *([_finding(FIXED_ANSWER_RULE_ID)] if case == "re-scan fixed answer" else []), share=0.04)
    recheck = None if case == "no re-check" else _scan(
        reply, share=0.9 if case == "re-check steers" else 0.04,
        status="failed" if case == "re-check failed" else "completed")
    after, _ = mark_residual(BEFORE, rescan, recheck, POLICY)
    assert (INVERSION_RULE_ID, Severity.HIGH) in _rules(after)
    assert not POLICY.verdict([after.stage]).passed


def test_an_input_flagged_by_the_inversion_alone_keeps_the_twins_finding() -> None:
    # the trigger was never found, so nothing shows it gone
    before = _scan(_finding(INVERSION_RULE_ID, 0.98), share=0.2)
    rescan, recheck = mark_residual(before, _scan(_finding(INVERSION_RULE_ID, 0.8), share=0.04),
                                    _scan(_finding(INVERSION_RULE_ID, 0.8), share=0.04), POLICY)
    assert _rules(rescan) == _rules(recheck) == [(INVERSION_RULE_ID, Severity.HIGH)]
