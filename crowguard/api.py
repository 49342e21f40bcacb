"""crowguard's declared Python API: the commands as functions that return the report model.

Everything a caller needs is importable from here; everything else in the package is internal and
may change. The functions never print and never exit: they return a ``Report`` (the same model the
CLI renders as JSON, Markdown, HTML, SARIF or CycloneDX) and raise ``CrowguardError`` subclasses
(``UsageError``, ``ConfigError``, ``IntegrityError``, ...) whose ``exit_code`` is the CLI's.

    from crowguard.api import Runtime, SanitizeSettings, gate, scan

    report = scan("models/suspect", policy="strict")
    if not report.verdict.passed: ...
    report = gate("models/suspect", Path("gated"), key=Path("key.pem"), runtime=Runtime(device="cpu"))

A policy is a ``Policy``, a shipped name (``default``, ``strict``, ``permissive``) or a YAML path.
Long runs report progress to a ``ProgressSink`` (``Callbacks(on_phase=print)`` adapts functions).
"""

from __future__ import annotations

from pathlib import Path

from crowguard.errors import ConfigError, CrowguardError, IntegrityError, ModelFolderError, UsageError
from crowguard.evaluate import EvalSpec, spec_from_files
from crowguard.pipeline.evaluation import evaluation_spec
from crowguard.pipeline.gate import GateRequest, run_gate
from crowguard.pipeline.pull import PullRequest, run_pull
from crowguard.pipeline.sanitize import BehaviourScans, SanitizeRequest, SanitizeSettings, run_sanitize
from crowguard.pipeline.scan import run_scan
from crowguard.policy import Policy, load_policy
from crowguard.progress import NO_PROGRESS, Callbacks, ProgressSink
from crowguard.pull import PullSettings
from crowguard.report.model import Finding, Report, Severity, StageName, StageResult, Verdict
from crowguard.runtime import Runtime
from crowguard.sanitize import Guide, SanitizeConfig
from crowguard.scan.behaviour import BehaviourOptions, behaviour_stage
from crowguard.sign import KeyPair, generate_keypair, verify_folder

__all__ = [
    "BehaviourOptions", "Callbacks", "ConfigError", "CrowguardError", "EvalSpec", "Finding", "Guide", "IntegrityError",
    "KeyPair", "ModelFolderError", "Policy", "ProgressSink", "PullSettings", "Report", "Runtime", "SanitizeConfig",
    "SanitizeSettings", "Severity", "StageName", "StageResult", "UsageError", "Verdict", "evaluation_spec",
    "gate", "keygen", "pull", "resolve_policy", "sanitize", "scan", "spec_from_files", "verify",
]

PolicyLike = Policy | str | Path


def resolve_policy(policy: PolicyLike) -> Policy:
    """A ``Policy`` as given, a shipped one by name, or a policy file, validated (ConfigError otherwise)."""
    return policy if isinstance(policy, Policy) else load_policy(policy)


def scan(model: str | Path, *, policy: PolicyLike = "default", behaviour: bool | None = None,
         options: BehaviourOptions | None = None, runtime: Runtime = Runtime(),
         progress: ProgressSink = NO_PROGRESS) -> Report:
    """Scan a local model folder's files and (``behaviour``, default: the policy's) its behaviour."""
    loaded = resolve_policy(policy)
    run_behaviour = loaded.behaviour_scan.enabled if behaviour is None else behaviour
    stages = [behaviour_stage(options, runtime, progress.count)] if run_behaviour else []
    return run_scan(model, loaded, stages=stages)


def sanitize(model: str | Path, out: str | Path, *, settings: SanitizeSettings = SanitizeSettings(),
             policy: PolicyLike = "default", scan: bool = True, options: BehaviourOptions | None = None,
             runtime: Runtime = Runtime(), adapter: str | Path | None = None, resume: bool = False,
             force: bool = False, progress: ProgressSink = NO_PROGRESS) -> Report:
    """Remove backdoors from ``model`` with CROW into ``out``; ``report.verdict`` is the policy's over the output.

    ``scan`` runs the behavioural scans before and after; the policy sets their thresholds and decides.
    """
    scans = BehaviourScans(options or BehaviourOptions()) if scan else None
    request = SanitizeRequest(model=Path(model), out=Path(out), settings=settings, runtime=runtime,
                              policy=resolve_policy(policy),
                              adapter=Path(adapter) if adapter is not None else None, resume=resume, force=force,
                              behaviour=scans)
    return run_sanitize(request, progress).report


def gate(model: str | Path, out: str | Path, *, policy: PolicyLike = "default", key: str | Path | None = None,
         source: PullSettings = PullSettings(), settings: SanitizeSettings = SanitizeSettings(),
         options: BehaviourOptions | None = BehaviourOptions(), runtime: Runtime = Runtime(), force: bool = False,
         progress: ProgressSink = NO_PROGRESS) -> Report:
    """Pull, scan, sanitize, re-scan, evaluate and sign ``model`` into ``out``; ``report.verdict`` decides.

    ``options=None`` skips the behavioural scans. On a pass ``out`` holds the signed model and its
    reports; on a fail only the reports, and nothing is signed.
    """
    request = GateRequest(model=str(model), out=Path(out), policy=resolve_policy(policy),
                          key=Path(key) if key is not None else None, source=source, sanitize=settings,
                          behaviour=options, runtime=runtime, force=force)
    return run_gate(request, progress)


def pull(reference: str, out: str | Path, *, source: PullSettings = PullSettings(), policy: PolicyLike = "default",
         force: bool = False) -> Report:
    """Pull a hub model, local folder or GGUF file into ``out``, every file checked; the report is the record."""
    return run_pull(PullRequest(reference, Path(out), source=source, policy=resolve_policy(policy),
                                force=force)).report


def verify(folder: str | Path, public_key: str | Path, *, allow_unsigned_extra: bool = False) -> Report:
    """Check ``folder`` against its ``model.sig``; an ``IntegrityError`` (exit 4) when anything differs."""
    result = verify_folder(folder, public_key, allow_unsigned_extra=allow_unsigned_extra)
    stage = StageResult(name=StageName.VERIFY, metrics={
        "signature": str(result.signature), "files": len(result.files), "key_fingerprint": result.key_fingerprint,
        "unsigned": list(result.unsigned)})
    return Report(command="verify", stages=(stage,), output=str(Path(folder).absolute()))


def keygen(name: str | Path, *, force: bool = False) -> KeyPair:
    """An EC P-256 key pair ``NAME.pem`` / ``NAME.pub`` for ``gate(key=...)`` and ``verify``."""
    return generate_keypair(name, force=force)
