"""What the human-readable formats lead with: the answer, the before/after numbers, why, and stage wording.

Markdown and HTML both read this module so they say the same things in the same order: the
verdict, then a before/after table (attack success, clean target rate, accuracy, accuracy under
the trigger, perplexity, behaviour re-scan) where the report has evaluation or re-scan stages,
then why, then the findings grouped by the stage that found them (the same trigger may be found on
the input and again on the sanitized model), then the stages, each with a sentence that fits what
the stage does. Every format names a stage in words with ``stage_title``.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowguard.report.model import Report, Severity, StageName, StageResult

BACKDOOR_PREFIX = "CG-BACKDOOR"
RESIDUAL_PREFIX = "CG-RESIDUAL"  # a sanitized model's taught reply that no known trigger reaches
_METRICS = (("asr", "attack success rate (triggered prompts)"),
            ("clean_trigger_rate", "clean target rate (target on clean prompts)"),
            ("clean_accuracy", "accuracy (clean prompts)"),
            ("triggered_accuracy", "accuracy under trigger"),
            ("perplexity", "perplexity (reference answers)"))
_FILE_STAGES = {"pull", "file-scan"}
_BEHAVIOUR_STAGES = {"behaviour-scan", "behaviour-rescan", "behaviour-recheck"}
STAGE_TITLES: dict[str, str] = {
    StageName.PULL: "Pull (download of the model)",
    StageName.FILE_SCAN: "File scan",
    StageName.BEHAVIOUR_SCAN: "Behaviour scan of the input model",
    StageName.BEHAVIOUR_RESCAN: "Behaviour re-scan of the sanitized model",
    StageName.BEHAVIOUR_RECHECK: "Re-check of the input's trigger candidates on the sanitized model",
    StageName.EVAL: "Evaluation",
    StageName.EVAL_BEFORE: "Evaluation before sanitizing",
    StageName.EVAL_AFTER: "Evaluation after sanitizing",
    StageName.SANITIZE: "Sanitizing (CROW)",
    StageName.ATTACK_SUCCESS: "Attack-success check",
    StageName.UTILITY: "Utility check (after against before sanitizing)",
    StageName.SIGN: "Signing",
    StageName.VERIFY: "Signature verification",
}


@dataclass(frozen=True)
class Comparison:
    """A small table: column headers and rows of (label, one cell per column)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class FindingGroup:
    """The findings of one stage, under a heading that names the stage in words and counts them."""

    stage: StageResult
    note: str | None  # what these findings mean where the stage stands in the run

    @property
    def title(self) -> str:
        """The stage in words."""
        return stage_title(self.stage.name)

    @property
    def count(self) -> str:
        """``2 findings, worst high``."""
        count = len(self.stage.findings)
        worst = max(f.severity for f in self.stage.findings)
        return f"{count} finding{'s' if count != 1 else ''}, worst {worst.value}"


def stage_title(name: str) -> str:
    """A stage's name in words (``behaviour-rescan`` -> ``Behaviour re-scan of the sanitized model``)."""
    return STAGE_TITLES.get(name, name)


def finding_groups(report: Report) -> tuple[FindingGroup, ...]:
    """One group per stage that has findings, in pipeline order."""
    sanitized = report.stage(StageName.SANITIZE) is not None
    return tuple(FindingGroup(stage, _group_note(stage, sanitized)) for stage in report.stages if stage.findings)


def _group_note(stage: StageResult, sanitized: bool) -> str | None:
    name = stage.name
    if name in (StageName.BEHAVIOUR_RESCAN, StageName.BEHAVIOUR_RECHECK) and all(
            f.rule_id.startswith(RESIDUAL_PREFIX) for f in stage.findings):
        return ("Found on the sanitized model: the input's trigger no longer steers it and a fresh scan found no "
                "other, but the reply the backdoor taught survives when it is begun for the model.")
    if name == StageName.BEHAVIOUR_SCAN and sanitized:
        return ("Found on the input model, before sanitizing. The run went on to sanitize it, so the verdict "
                "counts the scans of the sanitized model instead.")
    if name == StageName.BEHAVIOUR_RESCAN:
        return "Found on the sanitized model by a fresh scan: sanitizing did not remove these."
    if name == StageName.BEHAVIOUR_RECHECK:
        return ("The input model's trigger candidates, measured again on the sanitized model, still change it: "
                "sanitizing did not remove these.")
    if name == StageName.ATTACK_SUCCESS:
        return ("Measured on the sanitized model with the triggered test prompts." if sanitized else
                "Measured on the model as received (not sanitized) with the triggered test prompts.")
    return None


def headline(report: Report) -> str:
    """PASS / FAIL (exit n) / no verdict."""
    if report.verdict is None:
        return "no verdict"
    return "PASS" if report.verdict.passed else f"FAIL (exit {report.verdict.exit_code})"


def why(report: Report) -> tuple[str, ...]:
    """The verdict's reasons; for a pass, what was counted and found below the line."""
    verdict = report.verdict
    if verdict is None:
        return ()
    if verdict.reasons:
        return verdict.reasons
    below = sum(n for s, n in verdict.counts.items() if Severity(s) < verdict.fail_on)
    return (f"no finding at {verdict.fail_on.value} or above in the stages the policy counts"
            + (f" ({below} below that, listed under the findings by stage)" if below else ""),)


def comparison(report: Report) -> Comparison | None:
    """Before / after sanitizing (or the one evaluation of an unsanitized model), or None without such stages."""
    before, after = report.stage("eval-before"), report.stage("eval-after")
    scan_before, scan_after = report.stage("behaviour-scan"), report.stage("behaviour-rescan")
    if before is None and after is None:
        single = report.stage("eval")
        if single is None:
            return None
        columns: tuple[str, ...] = ("measured",)
        evals: tuple[StageResult | None, ...] = (single,)
        scans: tuple[StageResult | None, ...] = (scan_before,)
    else:
        columns, evals, scans = ("before sanitizing", "after sanitizing"), (before, after), (scan_before, scan_after)
    rows = [(label, tuple(_number(s.metrics.get(key)) if s else "not measured" for s in evals))
            for key, label in _METRICS if any(s is not None and s.metrics.get(key) is not None for s in evals)]
    if any(s is not None for s in scans):
        rows.append(("behaviour scan" if len(columns) == 1 else "behaviour scan / re-scan",
                     tuple(scan_result(s) for s in scans)))
    recheck = report.stage("behaviour-recheck")
    if recheck is not None and len(columns) == 2:  # the input's candidates, measured again after sanitizing
        rows.append(("re-check of the scan's candidates", ("-", scan_result(recheck))))
    return Comparison(columns=columns, rows=tuple(rows)) if rows else None


def scan_result(stage: StageResult | None) -> str:
    """One phrase for a behaviour scan's outcome."""
    if stage is None:
        return "not run"
    if stage.status != "completed":
        return f"{stage.status}" + (f": {stage.errors[0]}" if stage.errors else "")
    flagged = [f for f in stage.findings if f.rule_id.startswith(BACKDOOR_PREFIX)]
    if not flagged:
        residual = [f for f in stage.findings if f.rule_id.startswith(RESIDUAL_PREFIX)]
        return "no trigger found" + (f"; the taught reply survives ({residual[0].severity.value})" if residual else "")
    worst = max(f.severity for f in flagged)
    return f"flagged: {len(flagged)} backdoor finding{'s' if len(flagged) != 1 else ''} (worst {worst.value})"


def findings_sentence(stage: StageResult) -> str | None:
    """Where a stage's findings are listed (None: it has none)."""
    count = len(stage.findings)
    if not count:
        return None
    return f"{count} finding{'s' if count != 1 else ''}, listed under the findings by stage."


def no_findings_sentence(stage: StageResult) -> str | None:
    """What a completed stage without findings means, in words that fit the stage (None: say nothing)."""
    if stage.status != "completed" or stage.findings:
        return None
    if stage.name in _FILE_STAGES:
        return "No findings: no known-unsafe construct was found by these checks."
    if stage.name in _BEHAVIOUR_STAGES:
        return "No findings: no trigger candidate moved the model away from how it behaves on clean prompts."
    if stage.name.startswith("eval"):
        return "Measured; the numbers are below and in the before/after table."
    if stage.name in ("utility", "attack-success"):
        return "Within the policy's limit."
    if stage.name == "sanitize":
        return "Finetuned with CROW; the numbers are below."
    if stage.name == "sign":
        return "The output folder is signed."
    return "No findings."


def skipped_reason(stage: StageResult) -> str | None:
    """Why a skipped stage did not run, when it says."""
    reason = stage.metrics.get("reason")
    return str(reason) if stage.status == "skipped" and reason is not None else None


def _number(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "not measured" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
