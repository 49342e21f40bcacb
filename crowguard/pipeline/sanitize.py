"""``crowguard sanitize`` as a pipeline: evaluate before -> sanitize -> evaluate after -> a typed run.

The model folder is built in a staging folder beside ``--out`` and renamed into place only when the
whole command has succeeded (the after-evaluation included), so an interrupted run leaves nothing
that looks complete. Training checkpoints live in a hidden folder beside ``--out`` until the run
completes, for ``--resume``. A lab model's ``lab.json`` supplies its defence set as clean data only
when the request asks for it (``use_lab_card``, the ``--lab-card`` flag); otherwise it is never read.

``run_sanitize`` returns a ``SanitizeRun``: the report, plus the typed results the gate's checks and
the CLI's summary read (evaluations, the sanitize outcome, the scans), so nothing reads metrics back.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.data.lab_card import LAB_CARD, read_lab_card
from crowguard.errors import ConfigError, UsageError
from crowguard.evaluate import EvalResult, EvalSpec
from crowguard.evaluate.result import as_reported
from crowguard.models import inspect_folder
from crowguard.pipeline.checks import attack_success_check, utility_check
from crowguard.pipeline.evaluation import Evaluation, evaluation_stage
from crowguard.pipeline.persisting import mark_persisting
from crowguard.pipeline.remediation import after_sanitizing, answered_by_sanitizing
from crowguard.pipeline.residual import mark_residual
from crowguard.pipeline.rounds import first_guides, sanitize_in_rounds
from crowguard.policy import Policy
from crowguard.progress import NO_PROGRESS, Prefixed, ProgressSink
from crowguard.report.model import Report, Source, StageName, StageResult
from crowguard.runtime import Runtime
from crowguard.sanitize import CleanSet, SanitizeConfig, SanitizeOutcome
from crowguard.sanitize.data import clean_set_from_records
from crowguard.sanitize.guided import Guide
from crowguard.scan.behaviour import BehaviourOptions, BehaviourScanResult, behaviour_scan, measure_candidates

EFFECT_KEYS = ("asr", "clean_trigger_rate", "clean_accuracy", "triggered_accuracy", "perplexity")


@dataclass(frozen=True)
class SanitizeSettings:
    """How to sanitize, whichever command asks: ``sanitize`` directly, or ``gate`` (which nests these)."""

    config: SanitizeConfig = field(default_factory=SanitizeConfig)
    clean_data: Path | None = None  # Alpaca JSON/JSONL; None: a lab card's defence set when asked, else self-distil
    evaluation: EvalSpec | None = None  # before/after evaluation; None: none
    use_lab_card: bool = False  # a local lab model's lab.json may supply the defence set (--lab-card)
    guides: tuple[Guide, ...] = ()  # trigger candidates the user gives (--candidates), for method guided
    reply: str | None = None  # the taught reply the user gives (--reply): guided's stand-in, over the scan's

    def __post_init__(self) -> None:
        if self.reply is not None and not self.reply.strip():
            raise ConfigError("the taught reply given is empty", hint="give --reply the text the backdoor answers")

    def settings(self) -> dict[str, Any]:
        """JSON-able form for a report's settings."""
        return {**self.config.as_dict(), "clean_data": _str(self.clean_data),
                "candidates": [{"text": g.text, "position": g.mode} for g in self.guides], "reply": self.reply,
                "evaluation": self.evaluation.settings() if self.evaluation is not None else None}


@dataclass(frozen=True)
class BehaviourScans:
    """Scan for a trigger before and after sanitizing (``before`` reuses a scan already made)."""

    options: BehaviourOptions = field(default_factory=BehaviourOptions)
    before: BehaviourScanResult | None = None


@dataclass(frozen=True)
class SanitizeRequest:
    """Everything ``crowguard sanitize`` was asked to do."""

    model: Path
    out: Path
    settings: SanitizeSettings = field(default_factory=SanitizeSettings)
    runtime: Runtime = field(default_factory=Runtime)
    policy: Policy = field(default_factory=Policy)  # the scans' thresholds and the verdict over the output
    adapter: Path | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    force: bool = False
    behaviour: BehaviourScans | None = None

    @property
    def checkpoints(self) -> Path:
        """Where resumable state is kept: --checkpoint-dir, or a hidden folder beside --out."""
        if self.checkpoint_dir is not None:
            return self.checkpoint_dir.absolute()
        out = self.out.absolute()
        return out.parent / f".{out.name}.crowguard-checkpoint"


@dataclass(frozen=True)
class Effect:
    """One headline figure before and after sanitizing."""

    key: str
    before: float | None
    after: float | None


@dataclass(frozen=True)
class SanitizeRun:
    """What ``run_sanitize`` did, typed; ``report`` is its JSON boundary."""

    report: Report
    outcome: SanitizeOutcome | None  # None on a non-main process of a distributed run
    before: EvalResult | None = None
    after: EvalResult | None = None
    scan_before: BehaviourScanResult | None = None
    rescan: BehaviourScanResult | None = None  # a fresh scan of the sanitized model
    recheck: BehaviourScanResult | None = None  # the input's candidates measured on the sanitized model
    checks: tuple[StageResult, ...] = ()  # utility kept and (with test prompts) attack success, vs the policy

    @property
    def effect(self) -> tuple[Effect, ...]:
        """The headline figures before and after (empty without both evaluations)."""
        if self.before is None or self.after is None:
            return ()
        return effects(self.before, self.after)

    @property
    def scans_after(self) -> tuple[BehaviourScanResult, ...]:
        """The scans of the sanitized model (these, not the input's scan, speak for the output)."""
        return tuple(s for s in (self.rescan, self.recheck) if s is not None)

    @property
    def counted(self) -> tuple[StageResult, ...]:
        """What the verdict counts: the re-scans and the checks (the input's findings are what was answered)."""
        return counted_stages(self.rescan, self.recheck, self.checks)


def counted_stages(rescan: BehaviourScanResult | None, recheck: BehaviourScanResult | None,
                   checks: tuple[StageResult, ...]) -> tuple[StageResult, ...]:
    """The stages sanitize's verdict (and the gate's, after sanitizing) counts."""
    return (*(s.stage for s in (rescan, recheck) if s is not None), *checks)


def run_sanitize(request: SanitizeRequest, progress: ProgressSink = NO_PROGRESS) -> SanitizeRun:
    """Sanitize ``request.model`` into ``request.out``; return the typed run (the caller writes the report)."""
    _check_paths(request)
    main = is_main_process()
    checkpoints = _prepare_checkpoints(request, main=main)
    settings, runtime = request.settings, request.runtime
    spec = settings.evaluation if main else None
    stages: list[StageResult] = []
    scans = request.behaviour if main else None
    scan_before = None
    if scans is not None:
        scan_before = scans.before
        if scan_before is None:
            progress.phase("scanning the input model for a trigger")
            scan_before = behaviour_scan(request.model, request.policy, options=scans.options, runtime=runtime,
                                         progress=Prefixed(progress, "behaviour scan").count)
            stages.append(answered_by_sanitizing(scan_before.stage))
    before = after = None
    if spec is not None:
        progress.phase("evaluating the input model")
        before = evaluation_stage(StageName.EVAL_BEFORE, request.model, spec, runtime=runtime,
                                  progress=Prefixed(progress, "eval before"), shown_as=request.model)
        stages.append(before.stage)
    started = time.monotonic()
    with staged_dir(request.out, force=request.force) if main else nullcontext(None) as tmp:
        rescanner = None if scans is None or tmp is None else partial(
            _scans_after, scans=scans, policy=request.policy, before=scan_before, runtime=runtime, progress=progress)
        guided = settings.config.method == "guided"
        rounds = sanitize_in_rounds(
            request.model, tmp, settings.config, request.policy, rescan=rescanner, progress=progress,
            guides=first_guides(scan_before, request.policy, settings.guides) if guided else (),
            reply=_reply(settings, scan_before) if guided else None,
            clean_data=_clean_data(request), adapter=request.adapter, runtime=runtime, checkpoint_dir=checkpoints,
            resume=request.resume, evaluate=None if spec is None else partial(
                _round_figures, spec=spec, runtime=runtime, progress=progress))
        outcome, rescan, recheck = rounds.outcome, rounds.rescan, rounds.recheck
        metrics = outcome.metrics()
        if guided:
            metrics.update(rounds=list(rounds.summaries), stopped=rounds.stopped)
        seconds = round(time.monotonic() - started, 3)
        if spec is not None and tmp is not None and before is not None:
            progress.phase("evaluating the sanitized model")
            after = evaluation_stage(StageName.EVAL_AFTER, tmp, spec, runtime=runtime,
                                     progress=Prefixed(progress, "eval after"), shown_as=request.out)
            metrics["effect"] = {e.key: {"before": e.before, "after": e.after}
                                 for e in effects(before.result, after.result)}
            if rounds.summaries:
                rounds.summaries[-1]["eval"] = headline(after.result)
        stages.append(StageResult(name=StageName.SANITIZE, metrics=metrics, seconds=seconds))
        if after is not None:
            stages.append(after.stage)
        stages += [s.stage for s in (rescan, recheck) if s is not None]
        checks = _checks(before, after, request.policy) if main else ()
        stages += checks
    if main:
        shutil.rmtree(checkpoints, ignore_errors=True)
    report_settings = {**settings.settings(), "adapter": _str(request.adapter), "device": runtime.device,
                       "resume": request.resume, "lab_card": lab_card_setting(request.model, settings.use_lab_card),
                       "policy": request.policy.name}
    report = Report(command="sanitize", source=Source(reference=str(request.model), kind="local"),
                    stages=tuple(stages), settings=report_settings, output=str(request.out.absolute()),
                    verdict=request.policy.verdict(list(counted_stages(rescan, recheck, checks))))
    return SanitizeRun(report=report, outcome=outcome if main else None,
                       before=before.result if before is not None else None,
                       after=after.result if after is not None else None,
                       scan_before=scan_before, rescan=rescan, recheck=recheck, checks=checks)


def _checks(before: Evaluation | None, after: Evaluation | None, policy: Policy) -> tuple[StageResult, ...]:
    """Utility kept and, when the test prompts were evaluated, attack success: the gate's checks."""
    checks = [utility_check(before.result if before else None, after.result if after else None, policy)]
    if after is not None:
        checks.append(attack_success_check(after.result, policy, sanitized=True))
    return tuple(checks)


def _scans_after(folder: Path, *, scans: BehaviourScans, policy: Policy, before: BehaviourScanResult | None,
                 runtime: Runtime, progress: ProgressSink) -> tuple[BehaviourScanResult, BehaviourScanResult | None]:
    """A fresh scan of the sanitized model, and the input's own candidates measured on it again."""
    progress.phase("re-scanning the sanitized model")
    count = Prefixed(progress, "behaviour scan").count
    options = before.options_for_twin(scans.options) if before is not None else scans.options
    fresh = behaviour_scan(folder, policy, options=options, runtime=runtime, progress=count)
    rescan = _after_sanitizing(fresh, StageName.BEHAVIOUR_RESCAN)
    recheck = None
    if before is not None and before.candidates:
        recheck = _after_sanitizing(measure_candidates(folder, before.candidates, policy, options=options,
                                                       runtime=runtime, progress=count), StageName.BEHAVIOUR_RECHECK)
    return mark_residual(before, rescan, mark_persisting(before, recheck, policy), policy)


def _after_sanitizing(scan: BehaviourScanResult, name: StageName) -> BehaviourScanResult:
    """A scan of the sanitized model, named as such, its findings advising what fits after sanitizing."""
    return replace(scan, stage=after_sanitizing(scan.stage, name))  # candidates, probes and score kept


def headline(result: EvalResult) -> dict[str, float | None]:
    """The headline figures of one evaluation (rounded as the report shows them)."""
    return {key: as_reported(getattr(result, key)) for key in EFFECT_KEYS}


def _round_figures(folder: Path, *, spec: EvalSpec, runtime: Runtime,
                   progress: ProgressSink) -> dict[str, float | None]:
    progress.phase("evaluating this round's model")
    return headline(evaluation_stage(StageName.EVAL_AFTER, folder, spec, runtime=runtime,
                                     progress=Prefixed(progress, "eval round")).result)


def effects(before: EvalResult, after: EvalResult) -> tuple[Effect, ...]:
    """Each headline figure before and after, side by side (rounded as the report shows them)."""
    was, now = headline(before), headline(after)
    return tuple(Effect(key, was[key], now[key]) for key in EFFECT_KEYS)


def _reply(settings: SanitizeSettings, scan: BehaviourScanResult | None) -> str | None:
    """The taught reply guided's stand-in is fitted toward: the user's, else the input scan's best inverted one."""
    if settings.reply is not None:
        return settings.reply
    return scan.replies[0] if scan is not None and scan.replies else None


def _clean_data(request: SanitizeRequest) -> Path | CleanSet | None:
    """--clean-data; else, when asked for, a lab model's defence set; else None (the stage self-distils)."""
    settings = request.settings
    if settings.clean_data is not None:
        return settings.clean_data
    if not settings.use_lab_card:
        return None
    card = read_lab_card(request.model)
    if card is None or not card.defense_set:
        return None
    records = [p.record() for p in card.defense_set]
    return clean_set_from_records(records, f"{request.model}/lab.json defense_set", settings.config.num_samples,
                                  settings.config.seed)


def lab_card_setting(model: Path, used: bool) -> str | None:
    """What the report's settings say about the lab card: its path when it was used, else None."""
    return str(model / LAB_CARD) if used else None


def _check_paths(request: SanitizeRequest) -> None:
    inspect_folder(request.model)  # a bad input fails here, before any model is loaded
    model, out = request.model.absolute().resolve(), request.out.absolute().resolve()
    if out == model or model in out.parents or out in model.parents:
        raise UsageError(f"--out {request.out} overlaps the input model folder {request.model}",
                         hint="write the sanitized model to a separate folder; the input is never modified")
    check_output_dir(request.out, force=request.force)


def _prepare_checkpoints(request: SanitizeRequest, *, main: bool) -> Path:
    folder = request.checkpoints
    if request.resume:
        if not folder.is_dir():
            raise UsageError(f"--resume given, but there is no checkpoint in {folder}",
                             hint="run without --resume, or point --checkpoint-dir at the interrupted run's folder")
    elif folder.exists():
        if not request.force:
            raise UsageError(f"an interrupted run left a checkpoint in {folder}",
                             hint="pass --resume to continue it, or --force to start over")
        if main:
            shutil.rmtree(folder)
    return folder


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an ``accelerate launch`` / torchrun job."""
    return os.environ.get("RANK", "0") == "0"


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
