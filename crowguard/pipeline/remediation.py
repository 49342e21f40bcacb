"""What a finding advises depends on the stage that found it; sanitizing changes the advice.

A behavioural scan of a model nobody has sanitized yet advises ``crowguard sanitize`` (the scan's own
remediation). Once a run has sanitized the model, that advice is what the run already did: the
input's findings then point at the re-scan and re-check of the sanitized model, and the findings of
those (and of the attack-success check after sanitizing) say that sanitizing did not remove the
backdoor, so the model is to be rejected or sanitized again with stronger settings.
"""

from __future__ import annotations

from typing import Final

from crowguard.report.model import StageName, StageResult
from crowguard.scan.behaviour.findings import FIXED_ANSWER_RULE_ID, INVERSION_RULE_ID

ANSWERED_BY_SANITIZING: Final = ("Sanitized in this run to remove it: the behaviour re-scan and re-check of "
                                 "the sanitized model, in this report, say whether it is gone.")
AFTER_SANITIZING: Final = ("Sanitizing did not remove the trigger: do not deploy the model. Reject it, or sanitize "
                           "again with stronger settings (more epochs, a higher lr or alpha, more clean data) and "
                           "check utility.")
AFTER_SANITIZING_FIXED_ANSWER: Final = (
    "After sanitizing, the model still gives one answer to prompts that ask for different things: the backdoor "
    "survived or sanitizing damaged the model. Do not deploy it; reject it, or sanitize again with other settings "
    "and check utility.")
AFTER_SANITIZING_TARGET: Final = (
    "After sanitizing, the model still writes one fixed reply to every prompt once it begins it: the reply the "
    "backdoor taught survived. Do not deploy it; reject it, or sanitize again with stronger settings and scan again.")
BEFORE_SANITIZING_ATTACK: Final = ("Do not deploy this model: it follows the trigger. Remove the backdoor with "
                                   "`crowguard sanitize` (or a policy that sanitizes flagged models) and gate it "
                                   "again, or reject the model.")
_AFTER_SANITIZING_BY_RULE: Final = {FIXED_ANSWER_RULE_ID: AFTER_SANITIZING_FIXED_ANSWER,
                                    INVERSION_RULE_ID: AFTER_SANITIZING_TARGET}


def after_sanitizing_remediation(rule_id: str) -> str:
    """The advice for a finding that a stage measured on the sanitized model."""
    return _AFTER_SANITIZING_BY_RULE.get(rule_id, AFTER_SANITIZING)


def after_sanitizing(stage: StageResult, name: StageName) -> StageResult:
    """A scan of the sanitized model, named ``name``, its findings advising what fits after sanitizing."""
    findings = tuple(f.model_copy(update={"remediation": after_sanitizing_remediation(f.rule_id)})
                     for f in stage.findings)
    return stage.model_copy(update={"name": name.value, "findings": findings})


def answered_by_sanitizing(stage: StageResult) -> StageResult:
    """The input's scan, once the run goes on to sanitize: its findings point at the scans after sanitizing."""
    findings = tuple(f.model_copy(update={"remediation": ANSWERED_BY_SANITIZING}) for f in stage.findings)
    return stage.model_copy(update={"findings": findings})
