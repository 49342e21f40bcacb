"""``crowguard sanitize`` as a pipeline: evaluate before -> sanitize -> evaluate after -> Report.

The model folder is built in a staging folder beside ``--out`` and renamed into place only when the
whole command has succeeded (the after-evaluation included), so an interrupted run leaves nothing
that looks complete. Training checkpoints live in a hidden folder beside ``--out`` until the run
completes, for ``--resume``. A lab model's ``lab.json`` supplies its defence set as clean data only
when the request asks for it (``use_lab_card``, the ``--lab-card`` flag); otherwise it is never read.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.data.lab_card import LAB_CARD, read_lab_card
from crowguard.errors import UsageError
from crowguard.evaluate import EvalSpec, evaluate
from crowguard.models import inspect_folder
from crowguard.policy import Policy
from crowguard.report.model import Report, Source, StageResult
from crowguard.sanitize import CleanSet, PhaseCallback, ProgressCallback, SanitizeConfig, sanitize_model
from crowguard.sanitize.data import clean_set_from_records
from crowguard.scan.behaviour import BehaviourOptions, behaviour_scan, candidates_from_result, measure_candidates

EvalProgress = Callable[[str, str, int, int], None]
"""Called as ``progress(which, phase, done, total)``; ``which`` is ``before`` or ``after``."""
RESCAN_STAGE_NAME = "behaviour-rescan"
EFFECT_KEYS = ("asr", "clean_trigger_rate", "clean_accuracy", "triggered_accuracy", "perplexity")


@dataclass(frozen=True)
class BehaviourScans:
    """Scan for a trigger before and after sanitizing (``before`` reuses a scan already made)."""

    policy: Policy
    options: BehaviourOptions
    before: StageResult | None = None
    progress: Callable[[int, int, str], None] | None = None  # the scans' (done, total, phase)


@dataclass(frozen=True)
class SanitizeRequest:
    """Everything the command was asked to do."""

    model: Path
    out: Path
    config: SanitizeConfig
    clean_data: Path | None = None
    adapter: Path | None = None
    device: str = "auto"
    threads: int | None = None
    checkpoint_dir: Path | None = None
    resume: bool = False
    force: bool = False
    evaluation: EvalSpec | None = None
    behaviour: BehaviourScans | None = None
    use_lab_card: bool = False

    @property
    def checkpoints(self) -> Path:
        """Where resumable state is kept: --checkpoint-dir, or a hidden folder beside --out."""
        if self.checkpoint_dir is not None:
            return self.checkpoint_dir.absolute()
        out = self.out.absolute()
        return out.parent / f".{out.name}.crowguard-checkpoint"


def run_sanitize(request: SanitizeRequest, *, on_step: ProgressCallback | None = None,
                 on_phase: PhaseCallback | None = None, on_eval: EvalProgress | None = None) -> Report:
    """Sanitize ``request.model`` into ``request.out``; return the report (the caller writes it)."""
    _check_paths(request)
    main = is_main_process()
    checkpoints = _prepare_checkpoints(request, main=main)
    phase = on_phase or (lambda _name: None)
    spec = request.evaluation if main else None
    stages: list[StageResult] = []
    scans = request.behaviour if main else None
    scan_before = None
    if scans is not None:
        scan_before = scans.before
        if scan_before is None:
            phase("scanning the input model for a trigger")
            scan_before = behaviour_scan(request.model, scans.policy, options=scans.options,
                                         progress=scans.progress)
            stages.append(scan_before)
    if spec is not None:
        phase("evaluating the input model")
        stages.append(evaluation_stage("eval-before", request.model, spec, device=request.device,
                                       on_eval=on_eval, which="before", shown_as=request.model))
    started = time.monotonic()
    with staged_dir(request.out, force=request.force) if main else nullcontext(None) as tmp:
        outcome = sanitize_model(
            request.model, tmp, request.config, clean_data=_clean_data(request), adapter=request.adapter,
            device=request.device, threads=request.threads, checkpoint_dir=checkpoints, resume=request.resume,
            on_step=on_step, on_phase=on_phase)
        metrics = outcome.metrics()
        seconds = round(time.monotonic() - started, 3)
        after = None
        if spec is not None and tmp is not None:
            phase("evaluating the sanitized model")
            after = evaluation_stage("eval-after", tmp, spec, device=request.device, on_eval=on_eval,
                                     which="after", shown_as=request.out)
            metrics["effect"] = effect(_stage(stages, "eval-before").metrics, after.metrics)
        stages.append(StageResult(name="sanitize", metrics=metrics, seconds=seconds))
        if after is not None:
            stages.append(after)
        if scans is not None and tmp is not None:
            phase("re-scanning the sanitized model")
            stages += _scans_after(tmp, scans, scan_before)
    if main:
        shutil.rmtree(checkpoints, ignore_errors=True)
    settings = {**request.config.as_dict(), "clean_data": _str(request.clean_data), "adapter": _str(request.adapter),
                "device": request.device, "resume": request.resume,
                "evaluation": spec.settings() if spec is not None else None,
                "lab_card": lab_card_setting(request.model, request.use_lab_card)}
    return Report(command="sanitize", source=Source(reference=str(request.model), kind="local"), stages=tuple(stages),
                  settings=settings, output=str(request.out.absolute()))


def _scans_after(folder: Path, scans: BehaviourScans, before: StageResult | None) -> list[StageResult]:
    """A fresh scan of the sanitized model, and the input's own candidates measured on it again."""
    results = [behaviour_scan(folder, scans.policy, options=scans.options, progress=scans.progress).model_copy(
        update={"name": RESCAN_STAGE_NAME})]
    candidates = candidates_from_result(before) if before is not None else []
    if candidates:
        results.append(measure_candidates(folder, candidates, scans.policy, options=scans.options,
                                          progress=scans.progress))
    return results


def _stage(stages: list[StageResult], name: str) -> StageResult:
    return next(s for s in stages if s.name == name)


def effect(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Each headline figure before and after, side by side."""
    return {key: {"before": before.get(key), "after": after.get(key)} for key in EFFECT_KEYS}


def evaluation_stage(name: str, folder: Path, spec: EvalSpec, *, device: str, on_eval: EvalProgress | None,
                     which: str, shown_as: Path | None = None) -> StageResult:
    """Evaluate ``folder`` as a report stage; progress reaches ``on_eval`` tagged with ``which``."""
    progress = None if on_eval is None else (lambda phase, done, total: on_eval(which, phase, done, total))
    started = time.monotonic()
    result = evaluate(folder, spec, progress=progress, device=device)
    metrics = result.to_dict()
    if shown_as is not None:
        metrics["model"] = str(shown_as.absolute())
    return StageResult(name=name, metrics=metrics, seconds=round(time.monotonic() - started, 3))


def _clean_data(request: SanitizeRequest) -> Path | CleanSet | None:
    """--clean-data; else, when asked for, a lab model's defence set; else None (the stage self-distils)."""
    if request.clean_data is not None:
        return request.clean_data
    if not request.use_lab_card:
        return None
    card = read_lab_card(request.model)
    if card is None or not card.defense_set:
        return None
    records = [p.record() for p in card.defense_set]
    return clean_set_from_records(records, f"{request.model}/lab.json defense_set", request.config.num_samples,
                                  request.config.seed)


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
