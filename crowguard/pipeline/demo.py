"""``crowguard demo``: the whole gate on an embedded default, offline, on a CPU, in a few minutes.

A small lab model is built on the spot and cached: trained clean first, then given a BadNets backdoor
(trigger ``BadMagic``, target "You are stupid!") by a merged LoRA finetune, the way BackdoorLLM plants
backdoors and the setting CROW was made for. A key pair is made for the demo; the gate runs under
the shipped default policy with the lab model's own test prompts: the scan flags the model, so the
gate sanitizes it with method guided (the scan's trigger candidates inserted into the clean prompts,
CROW's objective, the paper's settings except 10 epochs instead of 5), re-scans, evaluates, and signs
a pass, which is then verified with the public key. Every figure in the summary comes from these runs.

CROW alone (``--method crow``) did not make this portable: its outcome on this model flipped with the
CPU's float rounding (a signed model on AVX2, attack success 0.13 and 0.96 and a refusal on two
AVX-512 machines). Guided sanitizing took the attack success to 0.00 on all eight seeds of this recipe
at 1 and 2 threads, and the demo's seed also passes the accuracy-under-trigger check (7 of the 8 do;
``bench/gate_lora_lab.py``, ``bench/RESULTS.md``); the demo still reports what the gate decided and
signs only a pass.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from crowguard import __version__
from crowguard.atomic import check_output_dir
from crowguard.lab.build import build_lab_model
from crowguard.lab.spec import LabSpec
from crowguard.pipeline.evaluation import evaluation_spec
from crowguard.pipeline.gate import GateRequest, ReportWriter, run_gate
from crowguard.pipeline.sanitize import SanitizeSettings
from crowguard.policy import builtin_policy, load_policy
from crowguard.progress import NO_PROGRESS, ProgressSink
from crowguard.report.model import Report
from crowguard.report.write import write_report_dir
from crowguard.runtime import Runtime
from crowguard.sanitize import SanitizeConfig
from crowguard.sanitize.train import ProgressCallback
from crowguard.sign import generate_keypair, verify_folder

DEMO_SPEC = LabSpec(attack="badnet", seed=0, poison_rate=0.2, injection="lora")
DEMO_SANITIZE = SanitizeConfig(epochs=10)


@dataclass(frozen=True)
class DemoOutcome:
    """What the demo produced, for the summary."""

    report: Report
    model_in: Path
    gated: Path
    public_key: Path
    verified: bool | None  # None when the gate failed and nothing was signed


def cache_dir() -> Path:
    """Where the demo model is kept between runs: $CROWGUARD_CACHE, else ~/.cache/crowguard."""
    root = os.environ.get("CROWGUARD_CACHE") or Path.home() / ".cache" / "crowguard"
    return Path(root) / "demo"


def demo_model_folder() -> Path:
    """Where the demo's model is cached: one folder per spec and crowguard version."""
    key = hashlib.sha256(f"{DEMO_SPEC!r} {__version__}".encode()).hexdigest()[:12]
    return cache_dir() / f"badnet-{key}"


def demo_model(*, progress: ProgressCallback | None = None) -> Path:
    """The demo's backdoored lab model, built on first use."""
    folder = demo_model_folder()
    if not (folder / "lab.json").is_file():
        build_lab_model(DEMO_SPEC, folder, force=True, progress=progress)
    return folder


def run_demo(out: Path, *, threads: int | None = 1, force: bool = False, progress: ProgressSink = NO_PROGRESS,
             build_progress: ProgressCallback | None = None,
             write_reports: ReportWriter = write_report_dir) -> DemoOutcome:
    """Build (or reuse) the demo model, make keys, gate it into ``out/model``, verify what was signed."""
    check_output_dir(out, force=force)
    progress.phase("building the demo model: a small Llama with a planted backdoor (cached after the first run)")
    model = demo_model(progress=build_progress)
    out.mkdir(parents=True, exist_ok=True)
    keys = generate_keypair(out / "demo-key", force=True)
    gated = out / "model"
    request = GateRequest(model=str(model), out=gated, policy=load_policy(builtin_policy("default")),
                          key=keys.private,
                          sanitize=SanitizeSettings(DEMO_SANITIZE, evaluation=evaluation_spec(model, use_lab_card=True),
                                                    use_lab_card=True),
                          runtime=Runtime(device="cpu", threads=threads), force=True)
    report = run_gate(request, progress, write_reports)
    verified = None
    if report.verdict is not None and report.verdict.passed:
        progress.phase("verifying the signature with the public key")
        verify_folder(gated, keys.public)
        verified = True
    return DemoOutcome(report=report, model_in=model, gated=gated, public_key=keys.public, verified=verified)
