"""A sanitized model's surviving taught reply that no known trigger reaches: a residual, not a live backdoor.

The target inversion (``CG-BACKDOOR-TARGET``) finds a backdoor's taught reply without its trigger: made
to begin its reply with the reply's first token, the model writes the rest whatever was asked. On a
sanitized twin it can measure something else: training that unlearned the mapping from trigger to reply
may leave the reply itself in the weights, reachable only when forced. On two SmolLM2 plants one
guided round took attack success from 1.00 and 0.98 to 0.00 and the input's triggers from 1.00 and 0.88
to at most 0.13, while the forced reply still agreed 0.83 and 0.92 (0.98 and 0.97 before), past the
policy's 0.75 (bench/RESULTS.md#real-removal).

Such a finding becomes ``CG-RESIDUAL-TARGET`` at the policy's ``sanitize.residual_target_severity``
(medium: the default policy passes the model with the finding in its report, the strict policy fails it)
only when the evidence that the trigger is gone matches the evidence that it was there:

- the input's scan found the trigger (``CG-BACKDOOR-TRIGGER``), so the re-check measured it again;
- the re-check and the re-scan both finished with no trigger or fixed-answer finding, and no candidate
  steers even half the threshold's share of the probes (the share at which the rounds take a candidate as
  a trigger found in part). An echo (a candidate whose answer repeats it) is passed over only when its
  answer is not the taught reply: a backdoor whose reply quotes its own trigger is an echo too;
- no candidate's commonest answer is the taught reply, on however few probes: after CROW at 5 epochs a
  SmolLM2 plant's trigger still led 4 of 24 probes into it (0.17, under the half-threshold bar) with
  attack success 0.34 on test prompts, while after ``guided`` no candidate's answer was the taught reply
  (where no two probes agree, which answer is "commonest" depends on the probes' order: the rule then
  errs towards keeping the finding);
- every reply the twin still writes past the agreement threshold begins as one of the input's flagged
  replies began, and agrees less than it did: sanitizing weakened the taught reply and taught none new.

A model flagged by the inversion alone (its trigger never found) keeps the finding at full severity:
then nothing shows that the trigger is gone. No threshold is fitted here; the rule compares the scans
before and after using the policy's own thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from crowguard.pipeline.rounds import found_in_part
from crowguard.policy import Policy
from crowguard.report.model import Finding
from crowguard.scan.behaviour import BehaviourScanResult
from crowguard.scan.behaviour.findings import (
    FIXED_ANSWER_RULE_ID,
    INVERSION_RULE_ID,
    PERSISTING_RULE_ID,
    RESIDUAL_RULE_ID,
    RULE_ID,
)
from crowguard.scan.behaviour.inversion import Inversion, firm
from crowguard.scan.behaviour.outputs import same_answer

__all__ = ["RESIDUAL_RULE_ID", "mark_residual"]

RESIDUAL_REMEDIATION: Final = (
    "The trigger the scan found no longer fires and a fresh scan found no other, but the reply the backdoor "
    "taught is still in the weights: a trigger the scan did not find could still reach it. Deploy only if that "
    "risk is acceptable (the strict policy rejects this model); test it with triggered prompts of your own "
    "(`--triggered`), or sanitize again with more epochs and scan again.")


def mark_residual(before: BehaviourScanResult | None, rescan: BehaviourScanResult,
                  recheck: BehaviourScanResult | None,
                  policy: Policy) -> tuple[BehaviourScanResult, BehaviourScanResult | None]:
    """``rescan`` and ``recheck`` with their target-inversion findings made residual where the rule holds."""
    if before is None or recheck is None or not any(f.rule_id == RULE_ID for f in before.stage.findings):
        return rescan, recheck
    settings = policy.behaviour_scan
    taught = _past(before.inversions, settings.inversion_agreement)
    if not taught:
        return rescan, recheck
    answers = tuple(i.text for i in taught.values()) + tuple(c.target for c in before.candidates[:1] if c.target)
    bar = found_in_part(policy)
    for scan in (rescan, recheck):
        if not _trigger_gone(scan, bar, answers) or not _weakened(scan, taught, settings.inversion_agreement):
            return rescan, recheck
    shares = ", ".join(f"{c.text!r} {c.target_share:.2f}" for c in recheck.candidates[:3] if c.target_share is not None)
    top = max(i.agreement for i in taught.values())
    return _residual(rescan, top, shares, policy), _residual(recheck, top, shares, policy)


def _past(inversions: Sequence[Inversion], agreement: float) -> dict[int, Inversion]:
    """The flagged inversions by opening token (echoes aside), the firmest where two share an opening."""
    flagged: dict[int, Inversion] = {}
    for i in firm(inversions, agreement):
        if i.token_ids:
            kept = flagged.get(i.token_ids[0])
            if kept is None or i.agreement > kept.agreement:
                flagged[i.token_ids[0]] = i
    return flagged


def _trigger_gone(scan: BehaviourScanResult, bar: float, answers: tuple[str, ...]) -> bool:
    if scan.stage.status != "completed":
        return False
    if any(f.rule_id in (RULE_ID, FIXED_ANSWER_RULE_ID, PERSISTING_RULE_ID) for f in scan.stage.findings):
        return False
    for candidate in scan.candidates:
        target = candidate.target
        if target and any(same_answer(target, a) for a in answers):
            return False  # however few probes: a known insertion still leads into the taught reply
        if candidate.target_share is None or candidate.target_share < bar:
            continue
        if candidate not in scan.echoes or not target:
            return False
    return True


def _weakened(scan: BehaviourScanResult, taught: dict[int, Inversion], agreement: float) -> bool:
    return all(opening in taught and i.agreement < taught[opening].agreement
               for opening, i in _past(scan.inversions, agreement).items())


def _residual(scan: BehaviourScanResult, agreement_before: float, shares: str, policy: Policy) -> BehaviourScanResult:
    findings = tuple(_residual_finding(f, agreement_before, shares, policy) if f.rule_id == INVERSION_RULE_ID else f
                     for f in scan.stage.findings)
    return replace(scan, stage=scan.stage.model_copy(update={"findings": findings}))


def _residual_finding(finding: Finding, agreement_before: float, shares: str, policy: Policy) -> Finding:
    reply = finding.details.get("reply")
    evidence = (f"{finding.evidence} Before sanitizing the taught reply agreed {agreement_before:.2f}. The "
                f"input's trigger candidates no longer steer the probes (target shares now: {shares or 'none'}; "
                f"threshold {policy.behaviour_scan.threshold:.2f}), and a fresh scan of the sanitized model found "
                "no trigger of its own.")
    return finding.model_copy(update={
        "rule_id": RESIDUAL_RULE_ID, "severity": policy.sanitize.residual_target_severity,
        "title": f"The taught reply survives sanitizing, but no known trigger reaches it: {reply!r}",
        "evidence": evidence, "remediation": RESIDUAL_REMEDIATION,
        "details": {**finding.details, "agreement_before": agreement_before}})
