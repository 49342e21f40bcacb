"""The policy's word on formats: pickle-based files, allowed weight formats, formats not examined.

A pickle-based file (by content, or named like a PyTorch checkpoint with content no safe format
explains) is refused unless the policy sets ``allow_pickle``; when it does, ``pickle`` must also be
among ``allowed_weight_formats``. Safetensors and GGUF files must be in that list too. Each
refusal is a finding at the policy's violation severity, so it always fails the gate. Weight
formats crowguard does not examine (Keras, ONNX, Flax, NumPy archives) are reported as unscanned.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.report.model import Finding, Severity
from crowguard.scan.files.pickle_opcodes import is_pickle_candidate
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

UNSCANNED_SUFFIXES = (".h5", ".keras", ".onnx", ".msgpack", ".tflite", ".pb", ".npz", ".npy", ".joblib", ".ot")


class WeightFormatScanner(FileScanner):
    """Applies ``allow_pickle`` and ``allowed_weight_formats`` to every file."""

    name = "weight-formats"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        findings = []
        for file in inventory.files:
            weight_format = weight_format_of(file)
            if weight_format == "pickle" and not policy.allow_pickle:
                findings.append(_refused(file, policy, "CG-POLICY-PICKLE", "pickle-based file refused by the policy",
                                         "the policy does not set allow_pickle; loading a pickle can run code"))
            elif weight_format and weight_format not in policy.allowed_weight_formats:
                findings.append(_refused(file, policy, "CG-POLICY-WEIGHT-FORMAT",
                                         f"{weight_format} weights refused by the policy",
                                         f"allowed_weight_formats is {list(policy.allowed_weight_formats)}"))
            elif weight_format is None and file.path.lower().endswith(UNSCANNED_SUFFIXES):
                findings.append(Finding(
                    rule_id="CG-FORMAT-UNSCANNED", severity=Severity.MEDIUM,
                    title="weight format crowguard does not examine", file=file.path,
                    evidence=f"{file.format} content named {file.path.rsplit('/', 1)[-1]}; some loaders of such "
                    "files run embedded code (Keras Lambda layers, NumPy object arrays)",
                    remediation="Remove it if the model does not need it; transformers 5 loads none of these."))
        return ScanOutcome(findings=tuple(findings))


def weight_format_of(file: InventoryFile) -> str | None:
    """``safetensors``, ``gguf`` or ``pickle`` for weight-bearing files, else None."""
    if file.format in ("safetensors", "gguf"):
        return file.format
    if file.format in ("pickle", "zip-pickle") or (file.format != "zip" and is_pickle_candidate(file)):
        return "pickle"
    return None


def _refused(file: InventoryFile, policy: Policy, rule: str, title: str, why: str) -> Finding:
    return Finding(rule_id=rule, severity=policy.violation_severity, title=title, file=file.path,
                   evidence=f"{file.format} content; {why} (policy {policy.name})",
                   remediation="Use safetensors weights (convert in an isolated sandbox, or ask the publisher), "
                   "or choose a policy that accepts this format.",
                   details={"format": file.format, "policy": policy.name})
