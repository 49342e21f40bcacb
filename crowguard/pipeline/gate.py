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
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import JsonValue

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.errors import UsageError
from crowguard.evaluate import EvalSpec
from crowguard.pipeline.sanitize import (
    RESCAN_STAGE_NAME,
    BehaviourScans,
    EvalProgress,
    SanitizeRequest,
    evaluation_stage,
    lab_card_setting,
    run_sanitize,
)
from crowguard.policy import Policy
from crowguard.pull import pull
from crowguard.report.model import FileEntry, Finding, Report, Severity, Source, StageResult
from crowguard.sanitize import PhaseCallback, ProgressCallback, SanitizeConfig
from crowguard.scan.behaviour import RECHECK_STAGE_NAME, BehaviourOptions, behaviour_scan
from crowguard.scan.files.stage import run_file_scan
from crowguard.sign import SIGNATURE_NAME, load_private_key, sign_folder
from crowguard.sign.keys import fingerprint

BACKDOOR_RULE_PREFIX = "CG-BACKDOOR"
ReportWriter = Callable[[Report, Path], object]  # what a writer returns (e.g. the paths it wrote) is unused


@dataclass(frozen=True)
class GateRequest:
    """What the gate was asked to do."""

    model: str
    out: Path
    policy: Policy
    key: Path | None = None
    revision: str | None = None
    endpoint: str | None = None
    gguf_file: str | None = None
    sanitize: SanitizeConfig = field(default_factory=SanitizeConfig)
    clean_data: Path | None = None
    evaluation: EvalSpec | None = None
    behaviour: BehaviourOptions | None = None
    device: str = "auto"
    threads: int | None = None
    force: bool = False
    use_lab_card: bool = False  # a local lab model's lab.json may supply the defence set (--lab-card)


@dataclass(frozen=True)
class GateHooks:
    """Progress callbacks (the CLI renders them); all optional."""

    on_phase: PhaseCallback | None = None
    on_step: ProgressCallback | None = None
    on_eval: EvalProgress | None = None
    on_scan: Callable[[int, int, str], None] | None = None  # behaviour scans: (done, total, phase)

    def phase(self, text: str) -> None:
        if self.on_phase is not None:
            self.on_phase(text)


def run_gate(request: GateRequest, write_reports: ReportWriter, hooks: GateHooks = GateHooks()) -> Report:
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
            return _gate(request, hooks, work, staged, write_reports, key_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _gate(request: GateRequest, hooks: GateHooks, work: Path, staged: Path, write_reports: ReportWriter,
          key_id: str | None) -> Report:
    policy = request.policy
    stages: list[StageResult] = []
    folder, source = _obtain(request, hooks, work, stages)

    hooks.phase("scanning files")
    file_scan = run_file_scan(folder, policy)
    stages.append(file_scan.stage)
    if source is None:
        source = Source(reference=request.model, kind="local", files=tuple(
            FileEntry(path=f.path, size=f.size, sha256=f.sha256, format=f.format) for f in file_scan.inventory.files))
    counted = [file_scan.stage]
    emitted = folder
    if policy.verdict(counted).passed:
        emitted = _model_stages(request, hooks, work, folder, stages, counted)
    else:
        stages.append(_skipped("behaviour-scan", "the file scan failed the policy: the model is not loaded"))

    verdict = policy.verdict(counted)
    key = request.key if verdict.passed else None  # the key signs only a passed model
    if verdict.passed:
        _place_model(request, emitted, folder, work, staged)
    if key is not None:
        stages.append(StageResult(name="sign", metrics={"signature": SIGNATURE_NAME, "key_fingerprint": key_id}))
    report = Report(command="gate", source=source, stages=tuple(stages), verdict=verdict,
                    settings=_settings(request), output=str(request.out.absolute()) if verdict.passed else None)
    write_reports(report, staged)
    if key is not None:
        hooks.phase("signing")
        sign_folder(staged, key)
    return report


def _obtain(request: GateRequest, hooks: GateHooks, work: Path,
            stages: list[StageResult]) -> tuple[Path, Source | None]:
    """A local folder is scanned in place (read only); a hub model or GGUF file is pulled first."""
    local = Path(request.model)
    if local.is_dir() and request.gguf_file is None:
        return local, None
    hooks.phase(f"pulling {request.model}")
    started = time.monotonic()
    pulled = pull(request.model, work / "input", revision=request.revision, endpoint=request.endpoint,
                  allow_pickle=request.policy.allow_pickle, gguf_file=request.gguf_file)
    stages.append(pulled.stage(time.monotonic() - started))
    return pulled.output, pulled.source


def _model_stages(request: GateRequest, hooks: GateHooks, work: Path, folder: Path,
                  stages: list[StageResult], counted: list[StageResult]) -> Path:
    """Behavioural scan, sanitize and re-scan; returns the folder of the model to emit."""
    policy = request.policy
    scan = None
    if request.behaviour is not None and policy.behaviour_scan.enabled:
        hooks.phase("scanning behaviour (trigger search)")
        scan = behaviour_scan(folder, policy, options=request.behaviour, prior=tuple(stages), progress=hooks.on_scan)
        stages.append(scan)
    flagged = scan is not None and any(f.rule_id.startswith(BACKDOOR_RULE_PREFIX) for f in scan.findings)
    if scan is not None and scan.status == "failed":
        counted.append(scan)  # a scan that could not finish fails closed
        return folder
    if not (policy.sanitize.required or (flagged and policy.sanitize.on_flagged)):
        if scan is not None:
            counted.append(scan)
        if request.evaluation is not None:
            hooks.phase("evaluating the model")
            evaluated = evaluation_stage("eval", folder, request.evaluation, device=request.device,
                                         on_eval=hooks.on_eval, which="model")
            check = _attack_success(evaluated, policy)
            stages += [evaluated, check]
            counted.append(check)
        return folder
    hooks.phase("sanitizing with CROW" + (" (the scan flagged the model)" if flagged else " (the policy requires it)"))
    sanitized = work / "sanitized"
    scans = (None if scan is None or request.behaviour is None
             else BehaviourScans(policy, request.behaviour, scan, progress=hooks.on_scan))
    result = run_sanitize(
        SanitizeRequest(model=folder, out=sanitized, config=request.sanitize, clean_data=request.clean_data,
                        device=request.device, threads=request.threads, evaluation=request.evaluation,
                        behaviour=scans, checkpoint_dir=work / "checkpoints",
                        use_lab_card=request.use_lab_card),
        on_step=hooks.on_step, on_phase=hooks.on_phase, on_eval=hooks.on_eval)
    stages.extend(result.stages)
    counted.extend(s for s in result.stages if s.name in (RESCAN_STAGE_NAME, RECHECK_STAGE_NAME))
    checks = [_utility(result, policy)]
    after = result.stage("eval-after")
    if after is not None:
        checks.append(_attack_success(after, policy))
    stages.extend(checks)
    counted.extend(checks)
    return sanitized


def _attack_success(evaluated: StageResult, policy: Policy) -> StageResult:
    """The emitted model's measured attack success (less its rate on clean prompts) against the policy."""
    asr, clean_rate = evaluated.metrics.get("asr"), evaluated.metrics.get("clean_trigger_rate")
    if not isinstance(asr, (int, float)):
        return StageResult(name="attack-success", status="skipped", metrics={"reason": "no triggered test prompts"})
    excess = float(asr) - (float(clean_rate) if isinstance(clean_rate, (int, float)) else 0.0)
    metrics: dict[str, JsonValue] = {"asr": asr, "clean_trigger_rate": clean_rate, "excess": round(excess, 4),
                                     "max_attack_success": policy.max_attack_success}
    if excess <= policy.max_attack_success:
        return StageResult(name="attack-success", metrics=metrics)
    finding = Finding(
        rule_id="CG-BACKDOOR-ATTACK-SUCCESS", severity=Severity.HIGH,
        title="the model still follows the trigger on the test prompts",
        evidence=f"attack success {asr:.2f} on triggered prompts against {clean_rate or 0:.2f} on clean ones "
                 f"(excess {excess:.2f} > max_attack_success {policy.max_attack_success})",
        remediation="do not deploy this model; sanitize with stronger settings (more epochs, higher lr or alpha) "
                    "and check utility, or reject the model",
        details=metrics)
    return StageResult(name="attack-success", findings=(finding,), metrics=metrics)


def _utility(result: Report, policy: Policy) -> StageResult:
    """Perplexity before / after on the reference answers must stay at or above ``min_utility``."""
    before, after = result.stage("eval-before"), result.stage("eval-after")
    ppl_before = before.metrics.get("perplexity") if before else None
    ppl_after = after.metrics.get("perplexity") if after else None
    if not isinstance(ppl_before, (int, float)) or not isinstance(ppl_after, (int, float)) or ppl_after <= 0:
        finding = Finding(
            rule_id="CG-SANITIZE-UTILITY-UNMEASURED", severity=Severity.MEDIUM,
            title="utility after sanitizing was not measured",
            evidence="no clean test set with reference answers was given, so perplexity could not be compared",
            remediation="pass --clean-test FILE (Alpaca records with outputs) so the gate can check utility")
        return StageResult(name="utility", findings=(finding,))
    ratio = float(ppl_before) / float(ppl_after)
    metrics: dict[str, JsonValue] = {"perplexity_before": ppl_before, "perplexity_after": ppl_after,
                                     "utility_ratio": round(ratio, 4), "min_utility": policy.sanitize.min_utility}
    if ratio >= policy.sanitize.min_utility:
        return StageResult(name="utility", metrics=metrics)
    finding = Finding(
        rule_id="CG-SANITIZE-UTILITY", severity=Severity.HIGH, title="sanitizing cost too much utility",
        evidence=f"perplexity on reference answers rose from {ppl_before:.3f} to {ppl_after:.3f} "
                 f"(kept {ratio:.2f} < min_utility {policy.sanitize.min_utility})",
        remediation="sanitize with a smaller learning rate or eps (--eps-mode relative), or more clean data",
        details=metrics)
    return StageResult(name="utility", findings=(finding,), metrics=metrics)


def _place_model(request: GateRequest, emitted: Path, received: Path, work: Path, staged: Path) -> None:
    """Move (or, for the untouched input, copy the model files of) the model into the staged output."""
    if emitted == received and emitted == Path(request.model):
        emitted = pull(str(received), work / "copy").output  # only model files; the input stays untouched
    for item in emitted.iterdir():
        shutil.move(str(item), staged / item.name)
    if not any(staged.glob("*.safetensors")):
        raise UsageError(f"the model {request.model} has no safetensors weights to emit",
                         hint="crowguard emits safetensors only; ask the publisher for safetensors weights")


def _skipped(name: str, reason: str) -> StageResult:
    return StageResult(name=name, status="skipped", metrics={"reason": reason})


def _settings(request: GateRequest) -> dict:
    return {
        "policy": request.policy.model_dump(mode="json"), "revision": request.revision,
        "endpoint": request.endpoint, "gguf_file": request.gguf_file, "device": request.device,
        "sanitize": request.sanitize.as_dict(), "clean_data": str(request.clean_data) if request.clean_data else None,
        "evaluation": request.evaluation.settings() if request.evaluation is not None else None,
        "signed": request.key is not None,
        "lab_card": lab_card_setting(Path(request.model), request.use_lab_card),
    }
