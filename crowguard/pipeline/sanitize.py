"""``crowguard sanitize`` as a pipeline: (evaluate before) -> sanitize -> (evaluate after) -> Report.

The model folder is built in a staging folder beside ``--out`` and renamed into place only when the
whole command has succeeded, so an interrupted run leaves nothing that looks complete. Training
checkpoints live in a hidden folder beside ``--out`` until the run completes, for ``--resume``.
"""

from __future__ import annotations

import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.errors import UsageError
from crowguard.models import inspect_folder
from crowguard.report.model import Report, Source, StageResult
from crowguard.sanitize import PhaseCallback, ProgressCallback, SanitizeConfig, sanitize_model


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

    @property
    def checkpoints(self) -> Path:
        """Where resumable state is kept: --checkpoint-dir, or a hidden folder beside --out."""
        if self.checkpoint_dir is not None:
            return self.checkpoint_dir.absolute()
        out = self.out.absolute()
        return out.parent / f".{out.name}.crowguard-checkpoint"


def run_sanitize(request: SanitizeRequest, *, on_step: ProgressCallback | None = None,
                 on_phase: PhaseCallback | None = None) -> Report:
    """Sanitize ``request.model`` into ``request.out``; return the report (the caller writes it)."""
    _check_paths(request)
    main = is_main_process()
    checkpoints = _prepare_checkpoints(request, main=main)
    started = time.monotonic()
    with staged_dir(request.out, force=request.force) if main else nullcontext(None) as tmp:
        outcome = sanitize_model(
            request.model, tmp, request.config, clean_data=request.clean_data, adapter=request.adapter,
            device=request.device, threads=request.threads, checkpoint_dir=checkpoints, resume=request.resume,
            on_step=on_step, on_phase=on_phase)
    if main:
        shutil.rmtree(checkpoints, ignore_errors=True)
    stage = StageResult(name="sanitize", metrics=outcome.metrics(), seconds=round(time.monotonic() - started, 3))
    settings = {**request.config.as_dict(), "clean_data": _str(request.clean_data), "adapter": _str(request.adapter),
                "device": request.device, "resume": request.resume}
    return Report(command="sanitize", source=Source(reference=str(request.model), kind="local"), stages=(stage,),
                  settings=settings, output=str(request.out.absolute()))


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
    import os

    return os.environ.get("RANK", "0") == "0"


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
