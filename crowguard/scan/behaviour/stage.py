"""The behavioural scan as a scan stage, and re-measuring known candidates on another model.

Public API::

    from crowguard.scan.behaviour import BehaviourOptions, behaviour_scan, behaviour_stage, measure_candidates

    result = behaviour_scan(folder, policy, runtime=Runtime(device="cpu"))   # a BehaviourScanResult
    result.stage, result.candidates, result.flagged                          # report stage, typed candidates
    report = run_scan(folder, policy, stages=[behaviour_stage(BehaviourOptions())])
    after = measure_candidates(sanitized, result.candidates, policy)

The stage declines (status "skipped") when the file scan failed or found something that fails the
policy: a model whose files are suspect is never loaded. It loads weights only through
``crowguard.models.load_model`` (safetensors, no remote code) and never reads ``lab.json``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from crowguard.errors import ModelFolderError, ToolError, UsageError
from crowguard.models import load_model
from crowguard.policy import Policy
from crowguard.progress import Count
from crowguard.report.model import Finding, SkippedFile, StageName, StageResult
from crowguard.runtime import Runtime
from crowguard.scan.behaviour.decision import counts, model_score, strongest_first
from crowguard.scan.behaviour.early_stop import StopBounds
from crowguard.scan.behaviour.findings import (
    RESIDUAL_RULE_ID,
    backdoor_finding,
    candidate_record,
    charts,
    fixed_answer_finding,
    inversion_finding,
    stage_metrics,
)
from crowguard.scan.behaviour.inversion import Inversion, firm
from crowguard.scan.behaviour.options import BehaviourOptions
from crowguard.scan.behaviour.probes import Probe
from crowguard.scan.behaviour.scanner import BehaviourOutcome, TriggerCandidate, scan_loaded
from crowguard.scan.interface import ScanStage

BACKDOOR_RULE_PREFIX = "CG-BACKDOOR"


@dataclass(frozen=True)
class BehaviourScanResult:
    """One behavioural scan: its report stage, and the candidates it ranked (strongest first), typed."""

    stage: StageResult
    candidates: tuple[TriggerCandidate, ...] = ()
    derived_probes: tuple[Probe, ...] = ()  # probes derived from the model: re-scan a sanitized twin on these
    score: float | None = None  # the model's score (None: the scan did not complete)
    echoes: frozenset[TriggerCandidate] = frozenset()  # candidates whose target repeats them (never triggers)
    replies: tuple[str, ...] = ()  # the inverted replies past the policy's agreement (``inversion``), best first
    inversions: tuple[Inversion, ...] = ()  # every inverted reply measured, best agreement first
    counted: frozenset[TriggerCandidate] = frozenset()  # candidates whose layer and output shifts beat their nulls

    def steering(self, share: float) -> tuple[TriggerCandidate, ...]:
        """The candidates (echoes aside) that steered at least ``share`` of the probes to one answer, strongest
        first."""
        return tuple(c for c in self.candidates
                     if c.target_share is not None and c.target_share >= share and c not in self.echoes)

    def options_for_twin(self, options: BehaviourOptions) -> BehaviourOptions:
        """``options`` for scanning this model's sanitized twin on the same probes (derived ones included), its
        inversions begun as this model's replies were."""
        if self.derived_probes:
            options = replace(options, fixed_probes=self.derived_probes)
        return replace(options, fixed_replies=self.replies) if self.replies else options

    @property
    def flagged(self) -> bool:
        """Whether the scan found a backdoor (a finding of a CG-BACKDOOR rule)."""
        return any(f.rule_id.startswith(BACKDOOR_RULE_PREFIX) for f in self.stage.findings)

    @property
    def residual(self) -> bool:
        """Whether a sanitized model's taught reply was found to survive with no known trigger reaching it
        (``CG-RESIDUAL-TARGET``, which ``crowguard.pipeline.residual`` gives; not a backdoor flag)."""
        return any(f.rule_id == RESIDUAL_RULE_ID for f in self.stage.findings)

    @property
    def failed(self) -> bool:
        """Whether the scan could not finish (the gate then fails closed)."""
        return self.stage.status == "failed"


def behaviour_scan(folder: str | Path, policy: Policy, *, options: BehaviourOptions | None = None,
                   runtime: Runtime = Runtime(), progress: Count | None = None,
                   prior: Sequence[StageResult] = ()) -> BehaviourScanResult:
    """Scan a model folder for a trigger; a finding when the score reaches the policy threshold."""
    return _run(Path(folder), policy, options or BehaviourOptions(), runtime, progress, prior, None,
                StageName.BEHAVIOUR_SCAN)


def measure_candidates(folder: str | Path, candidates: Sequence[TriggerCandidate], policy: Policy, *,
                       options: BehaviourOptions | None = None, runtime: Runtime = Runtime(),
                       progress: Count | None = None) -> BehaviourScanResult:
    """Measure given candidates (e.g. from the scan before sanitizing) on another model, with the same probes.

    The result has the same metrics and finding rule as ``behaviour_scan``, so a candidate whose effect
    did not shrink still fails the gate.
    """
    if not candidates:
        raise UsageError("no trigger candidates to measure", hint="pass the candidates of an earlier behaviour scan")
    return _run(Path(folder), policy, options or BehaviourOptions(), runtime, progress, (), list(candidates),
                StageName.BEHAVIOUR_RECHECK)


def behaviour_stage(options: BehaviourOptions | None = None, runtime: Runtime = Runtime(),
                    progress: Count | None = None) -> ScanStage:
    """``behaviour_scan`` as a ``run_scan`` stage."""

    def stage(folder: Path, policy: Policy, prior: tuple[StageResult, ...]) -> StageResult:
        return behaviour_scan(folder, policy, options=options, runtime=runtime, progress=progress, prior=prior).stage

    return stage


def _run(folder: Path, policy: Policy, options: BehaviourOptions, runtime: Runtime, progress: Count | None,
         prior: Sequence[StageResult], candidates: list[TriggerCandidate] | None,
         name: StageName) -> BehaviourScanResult:
    reason = _decline_reason(policy, prior)
    if reason:
        return BehaviourScanResult(StageResult(name=name, status="skipped",
                                               skipped=(SkippedFile(path=".", reason=reason),)))
    started = time.perf_counter()
    try:
        loaded = load_model(folder, device=runtime.device, dtype=runtime.dtype, threads=runtime.threads)
    except ToolError as exc:  # e.g. a degenerate tokenizer: nothing could be measured, fail closed
        return BehaviourScanResult(StageResult(name=name, status="failed", errors=(exc.message,),
                                               seconds=round(time.perf_counter() - started, 3)))
    except ModelFolderError as exc:
        return BehaviourScanResult(StageResult(
            name=name, status="skipped", skipped=(SkippedFile(path=".", reason=f"model not loaded: {exc.message}"),),
            seconds=round(time.perf_counter() - started, 3)))
    if candidates is not None:
        vocabulary = len(loaded.tokenizer)
        bad = [c.text for c in candidates if not c.token_ids or max(c.token_ids) >= vocabulary]
        if bad:
            raise UsageError(f"candidates {bad} do not fit this model's vocabulary of {vocabulary} tokens",
                             hint="measure candidates only on a model with the same tokenizer")
    try:
        bounds = StopBounds(policy.behaviour_scan.min_layer_z, policy.behaviour_scan.threshold)
        outcome = scan_loaded(loaded, options, progress, candidates, stop=bounds)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a scan that could not finish fails the gate closed (exit 3)
        error = exc.message if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
        return BehaviourScanResult(StageResult(name=name, status="failed", errors=(error,),
                                               seconds=round(time.perf_counter() - started, 3)))
    return _result(name, outcome, policy, seconds=time.perf_counter() - started, tokenizer_note=loaded.tokenizer_note)


def _result(name: StageName, outcome: BehaviourOutcome, policy: Policy, *, seconds: float,
            tokenizer_note: str | None = None) -> BehaviourScanResult:
    settings = policy.behaviour_scan
    positions = int(outcome.stats.get("profile_positions", 0))
    ordered = strongest_first(outcome.candidates, settings.min_layer_z)
    records = [candidate_record(e, settings.min_layer_z, positions) for e in ordered]
    score = model_score(outcome.candidates, settings.min_layer_z)
    top = ordered[0] if ordered else None
    findings: list[Finding] = []
    if top is not None and score >= settings.threshold:
        findings.append(backdoor_finding(top, records, score=score, threshold=settings.threshold,
                                         severity=settings.severity,
                                         probes=int(outcome.stats["verification_probes"]), positions=positions))
    # the flagged replies: the finding's, and where the sanitized twin's re-scan begins its own
    replies = tuple(i.text for i in firm(outcome.inversions, settings.inversion_agreement))
    if replies:
        findings.append(inversion_finding(outcome.inversions, threshold=settings.inversion_agreement,
                                          probes=int(outcome.stats["verification_probes"]),
                                          severity=settings.severity))
    if outcome.fixed_answer.share >= settings.fixed_answer_share:
        findings.append(fixed_answer_finding(outcome.fixed_answer, threshold=settings.fixed_answer_share,
                                             severity=settings.severity))
    metrics: dict[str, Any] = stage_metrics(outcome, records, score=score, threshold=settings.threshold,
                                            min_layer_z=settings.min_layer_z,
                                            chart_specs=charts(outcome, top, records, positions,
                                                                               settings.min_layer_z))
    if tokenizer_note is not None:  # the shipped tokenizer.json replaced transformers' class (why)
        metrics["tokenizer"] = tokenizer_note
    ranked = tuple(TriggerCandidate(e.candidate.text, e.candidate.token_ids, e.candidate.source, e.mode,
                                    e.target_share, e.target_text) for e in ordered)
    echoes = frozenset(c for c, e in zip(ranked, ordered) if e.echo)
    counted = frozenset(c for c, e in zip(ranked, ordered) if counts(e, settings.min_layer_z))
    sources = outcome.stats.get("probe_sources", {})
    if sources:  # in words, for the formats that show scalars: "24 built-in, 8 derived: sampled from the model"
        metrics["probes"] = ", ".join(f"{count} {source}" for source, count in sources.items())
    if outcome.derived_probes:
        metrics["derived_probes"] = [p.instruction for p in outcome.derived_probes]
    return BehaviourScanResult(StageResult(name=name, findings=tuple(findings), metrics=metrics,
                                           seconds=round(seconds, 3)), ranked, outcome.derived_probes, score, echoes,
                               replies, tuple(outcome.inversions), counted)


def _decline_reason(policy: Policy, prior: Sequence[StageResult]) -> str | None:
    for stage in prior:
        if stage.status == "failed":
            return f"stage {stage.name} could not finish; the model was not loaded"
        blocking = [f for f in stage.findings if f.severity >= policy.fail_on]
        if blocking:
            return (f"stage {stage.name} found {len(blocking)} problem(s) at or above {policy.fail_on.value} "
                    f"(first: {blocking[0].rule_id}); the model was not loaded")
    return None
