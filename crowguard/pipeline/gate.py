"""``crowguard gate``: the whole ingestion of one model, ending in a signed model or a red build.

pull (hub or GGUF) -> file scan -> behavioural scan -> sanitize (when the policy requires it, or
when the scan flags the model and the policy says so) -> behavioural re-scan -> evaluation ->
verdict -> sign. The output folder is staged beside ``--out`` and renamed into place whole. On a
pass it holds the model (safetensors), the reports and ``model.sig`` covering all of them; on a
fail it holds only the reports, and nothing is signed.

What the verdict counts: the file scan; the behavioural scan of the model that is emitted (the
re-scan when the model was sanitized, since the input's finding is then what sanitizing answered);
and the utility check after sanitizing. Every stage is in the report either way.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.errors import UsageError
from crowguard.pipeline.checks import attack_success_check
from crowguard.pipeline.evaluation import evaluation_stage
from crowguard.pipeline.remediation import answered_by_sanitizing
from crowguard.pipeline.sanitize import (
    BehaviourScans,
    SanitizeRequest,
    SanitizeSettings,
    lab_card_setting,
    run_sanitize,
)
from crowguard.policy import Policy
from crowguard.progress import NO_PROGRESS, Prefixed, ProgressSink
from crowguard.pull import PullSettings, pull
from crowguard.report.model import FileEntry, Report, Source, StageName, StageResult
from crowguard.report.write import write_report_dir
from crowguard.runtime import Runtime
from crowguard.scan.behaviour import BehaviourOptions, behaviour_scan
from crowguard.scan.files.stage import run_file_scan
from crowguard.sign import SIGNATURE_NAME, load_private_key, sign_folder
from crowguard.sign.keys import fingerprint

__all__ = ["GateRequest", "PullSettings", "ReportWriter", "run_gate"]
ReportWriter = Callable[[Report, Path], object]  # what a writer returns (e.g. the paths it wrote) is unused


@dataclass(frozen=True)
class GateRequest:
    """What the gate was asked to do; it nests the sanitize settings rather than copying them."""

    model: str
    out: Path
    policy: Policy
    key: Path | None = None
    source: PullSettings = field(default_factory=PullSettings)
    sanitize: SanitizeSettings = field(default_factory=SanitizeSettings)
    behaviour: BehaviourOptions | None = field(default_factory=BehaviourOptions)  # None: no behavioural scan
    runtime: Runtime = field(default_factory=Runtime)
    force: bool = False


def run_gate(request: GateRequest, progress: ProgressSink = NO_PROGRESS,
             write_reports: ReportWriter = write_report_dir) -> Report:
    """Run the gate; ``write_reports(report, folder)`` writes the report files into the output folder."""
    if request.policy.require_signature and request.key is None:
        raise UsageError(f"policy {request.policy.name} requires a signature, but no --key was given",
                         hint="pass --key PRIVATE.pem (crowguard keygen makes one), or use a policy with "
                              "require_signature: false")
    key_id = None
    if request.key is not None:  # a bad key fails now, not after an hour of training
        key_id = fingerprint(load_private_key(request.key).public_key())
    check_output_dir(request.out, force=request.force)
    request.out.absolute().parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{request.out.name}.gate-work-", dir=request.out.absolute().parent))
    try:
        with staged_dir(request.out, force=request.force) as staged:
            return _gate(request, progress, work, staged, write_reports, key_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _gate(request: GateRequest, progress: ProgressSink, work: Path, staged: Path, write_reports: ReportWriter,
          key_id: str | None) -> Report:
    policy = request.policy
    stages: list[StageResult] = []
    folder, source = _obtain(request, progress, work, stages)

    progress.phase("scanning files")
    file_scan = run_file_scan(folder, policy)
    stages.append(file_scan.stage)
    if source is None:
        source = Source(reference=request.model, kind="local", files=tuple(
            FileEntry(path=f.path, size=f.size, sha256=f.sha256, format=f.format) for f in file_scan.inventory.files))
    counted = [file_scan.stage]
    emitted = folder
    if policy.verdict(counted).passed:
        emitted = _model_stages(request, progress, work, folder, stages, counted)
    else:
        stages.append(_skipped(StageName.BEHAVIOUR_SCAN, "the file scan failed the policy: the model is not loaded"))

    verdict = policy.verdict(counted)
    key = request.key if verdict.passed else None  # the key signs only a passed model
    if verdict.passed:
        _place_model(request, emitted, folder, work, staged)
    if key is not None:
        stages.append(StageResult(name=StageName.SIGN, metrics={"signature": SIGNATURE_NAME,
                                                                 "key_fingerprint": key_id}))
    report = Report(command="gate", source=source, stages=tuple(stages), verdict=verdict,
                    settings=_settings(request), output=str(request.out.absolute()) if verdict.passed else None)
    write_reports(report, staged)
    if key is not None:
        progress.phase("signing")
        sign_folder(staged, key)
    return report


def _obtain(request: GateRequest, progress: ProgressSink, work: Path,
            stages: list[StageResult]) -> tuple[Path, Source | None]:
    """A local folder is scanned in place (read only); a hub model or GGUF file is pulled first."""
    local = Path(request.model)
    if local.is_dir() and request.source.gguf_file is None:
        return local, None
    progress.phase(f"pulling {request.model}")
    started = time.monotonic()
    pulled = pull(request.model, work / "input", revision=request.source.revision, endpoint=request.source.endpoint,
                  allow_pickle=request.policy.allow_pickle, gguf_file=request.source.gguf_file)
    stages.append(pulled.stage(time.monotonic() - started))
    return pulled.output, pulled.source


def _model_stages(request: GateRequest, progress: ProgressSink, work: Path, folder: Path,
                  stages: list[StageResult], counted: list[StageResult]) -> Path:
    """Behavioural scan, sanitize and re-scan; returns the folder of the model to emit."""
    policy, settings = request.policy, request.sanitize
    scan = None
    if request.behaviour is not None and policy.behaviour_scan.enabled:
        progress.phase("scanning behaviour (trigger search)")
        scan = behaviour_scan(folder, policy, options=request.behaviour, runtime=request.runtime,
                              prior=tuple(stages), progress=Prefixed(progress, "behaviour scan").count)
        stages.append(scan.stage)
    flagged = scan is not None and scan.flagged
    if scan is not None and scan.failed:
        counted.append(scan.stage)  # a scan that could not finish fails closed
        return folder
    if not (policy.sanitize.required or (flagged and policy.sanitize.on_flagged)):
        if scan is not None:
            counted.append(scan.stage)
        if settings.evaluation is not None:
            progress.phase("evaluating the model")
            evaluated = evaluation_stage(StageName.EVAL, folder, settings.evaluation, runtime=request.runtime,
                                         progress=Prefixed(progress, "eval model"))
            check = attack_success_check(evaluated.result, policy, sanitized=False)
            stages += [evaluated.stage, check]
            counted.append(check)
        return folder
    if flagged and policy.sanitize.guided_when_flagged and settings.config.method == "crow":
        # the scan knows what steers the model: unlearn its candidates (CROW's objective, guided)
        settings = replace(settings, config=replace(settings.config, method="guided"))
    progress.phase(f"sanitizing ({settings.config.method})" + (" (the scan flagged the model)" if flagged else
                                                                " (the policy requires it)"))
    if scan is not None:  # its advice (sanitize) is what the gate now does
        stages[stages.index(scan.stage)] = answered_by_sanitizing(scan.stage)
    sanitized = work / "sanitized"
    scans = None if scan is None or request.behaviour is None else BehaviourScans(request.behaviour, scan)
    run = run_sanitize(SanitizeRequest(model=folder, out=sanitized, settings=settings, runtime=request.runtime,
                                       policy=policy, behaviour=scans, checkpoint_dir=work / "checkpoints"), progress)
    stages.extend(run.report.stages)
    counted.extend(run.counted)  # the re-scans and the checks: what speaks for the sanitized model
    return sanitized


def _place_model(request: GateRequest, emitted: Path, received: Path, work: Path, staged: Path) -> None:
    """Move (or, for the untouched input, copy the model files of) the model into the staged output."""
    if emitted == received and emitted == Path(request.model):
        emitted = pull(str(received), work / "copy").output  # only model files; the input stays untouched
    for item in emitted.iterdir():
        shutil.move(str(item), staged / item.name)
    if not any(staged.glob("*.safetensors")):
        raise UsageError(f"the model {request.model} has no safetensors weights to emit",
                         hint="crowguard emits safetensors only; ask the publisher for safetensors weights")


def _skipped(name: StageName, reason: str) -> StageResult:
    return StageResult(name=name, status="skipped", metrics={"reason": reason})


def _settings(request: GateRequest) -> dict:
    sanitize = request.sanitize
    return {
        "policy": request.policy.model_dump(mode="json"), "revision": request.source.revision,
        "endpoint": request.source.endpoint, "gguf_file": request.source.gguf_file, "device": request.runtime.device,
        "sanitize": sanitize.config.as_dict(), "clean_data": str(sanitize.clean_data) if sanitize.clean_data else None,
        "evaluation": sanitize.evaluation.settings() if sanitize.evaluation is not None else None,
        "signed": request.key is not None,
        "lab_card": lab_card_setting(Path(request.model), sanitize.use_lab_card),
    }

