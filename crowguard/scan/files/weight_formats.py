"""The policy's word on formats, and the findings for content no scanner can clear.

A pickle-based file (by content, or named like a PyTorch checkpoint with content no safe format
explains) is refused unless the policy sets ``allow_pickle``; when it does, ``pickle`` must also be
among ``allowed_weight_formats``. Safetensors and GGUF files must be in that list too. Each
refusal is a finding at the policy's violation severity, so it always fails the gate.

What a loader could read: any regular file of the folder. transformers picks weights by name, but
remote code, a user's script or another library may be pointed at any path, and a name says
nothing about content. So every file must be told by its content as a format whose loading runs no
code (safetensors, GGUF, JSON, text, images, protobuf) or be examined (pickles and everything that
can wrap one: zips, tars, compressed streams, ``.npy``), or it is a finding that fails the default
policy: CG-FORMAT-UNSCANNED (HIGH) for weight formats crowguard does not examine (Keras, ONNX,
TensorFlow, Flax), CG-FORMAT-UNKNOWN-BINARY (HIGH) for bytes no parser recognises. A file that is
two formats at once (a polyglot: safetensors that is also a zip or a pickle) is CRITICAL under every
policy; a name that promises another format than the content is is HIGH (CG-FORMAT-NAME-MISMATCH).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.file_formats import COMPRESSED_FORMATS, ZIP_FORMATS
from crowguard.models.folder import PICKLE_SUFFIXES
from crowguard.report.model import Finding, Severity
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

UNSCANNED_SUFFIXES = (".h5", ".hdf5", ".keras", ".onnx", ".msgpack", ".tflite", ".pb", ".ot", ".mlmodel")
_UNEXPLAINED = ("binary", "text", "protobuf", "empty")
_CHECKPOINT_CONTENT = ("pickle", "zip-pickle", "zip", "tar", *COMPRESSED_FORMATS, *_UNEXPLAINED)
EXPECTED_BY_SUFFIX: dict[tuple[str, ...], tuple[str, ...]] = {
    (".gguf",): ("gguf",),
    (".npy",): ("numpy",),
    (".npz", ".zip"): ZIP_FORMATS,
    (".tar",): ("tar",),
    (".gz", ".tgz"): ("gzip",),
    (".bz2",): ("bz2",),
    (".xz",): ("xz",),
    (".zst",): ("zstd",),
    (*PICKLE_SUFFIXES, ".joblib"): _CHECKPOINT_CONTENT,
}


class WeightFormatScanner(FileScanner):
    """Applies ``allow_pickle`` and ``allowed_weight_formats``, and flags content nothing examines."""

    name = "weight-formats"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        findings: list[Finding] = []
        for file in inventory.files:
            weight_format = weight_format_of(file)
            if weight_format == "pickle":
                refusal = pickle_refusal(file, policy)
                findings += [refusal] if refusal else []
            elif weight_format and weight_format not in policy.allowed_weight_formats:
                findings.append(_refused(file, policy, "CG-POLICY-WEIGHT-FORMAT",
                                         f"{weight_format} weights refused by the policy",
                                         f"allowed_weight_formats is {list(policy.allowed_weight_formats)}"))
            findings += _content_findings(file)
        return ScanOutcome(findings=tuple(findings))


def weight_format_of(file: InventoryFile) -> str | None:
    """``safetensors``, ``gguf`` or ``pickle`` for weight-bearing files, else None.

    Pickles found only inside a wrapper (a gzip, a tar, an object ``.npy``) are judged by the
    pickle scanner, which unwraps them.
    """
    if file.format in ("pickle", "zip-pickle") or "pickle" in file.also:
        return "pickle"
    if file.format in ("safetensors", "gguf"):
        return file.format
    if file.path.lower().endswith(PICKLE_SUFFIXES) and file.format in _UNEXPLAINED:
        return "pickle"
    return None


def pickle_refusal(file: InventoryFile, policy: Policy) -> Finding | None:
    """The policy's refusal of one pickle-based file, or None when the policy accepts pickles."""
    if not policy.allow_pickle:
        return _refused(file, policy, "CG-POLICY-PICKLE", "pickle-based file refused by the policy",
                        "the policy does not set allow_pickle; loading a pickle can run code")
    if "pickle" not in policy.allowed_weight_formats:
        return _refused(file, policy, "CG-POLICY-WEIGHT-FORMAT", "pickle weights refused by the policy",
                        f"allowed_weight_formats is {list(policy.allowed_weight_formats)}")
    return None


def _content_findings(file: InventoryFile) -> list[Finding]:
    name = file.path.rsplit("/", 1)[-1]
    lowered = name.lower()
    findings = []
    if file.also:
        findings.append(Finding(
            rule_id="CG-FORMAT-POLYGLOT", severity=Severity.CRITICAL, title="file is two formats at once",
            file=file.path, evidence=f"the same bytes are {file.format} and also {', '.join(file.also)}: a loader "
            "that reads it as the second (torch.load opens any zip, pickle.load any pickle) runs what the first "
            "hides", remediation="Do not load this file; no legitimate writer produces a polyglot.",
            details={"format": file.format, "also": list(file.also)}))
    for suffixes, expected in EXPECTED_BY_SUFFIX.items():
        if lowered.endswith(suffixes) and file.format not in expected:
            findings.append(Finding(
                rule_id="CG-FORMAT-NAME-MISMATCH", severity=Severity.HIGH, title="file name and content disagree",
                file=file.path, evidence=f"named {name} but its content is {file.format}; loaders pick a parser "
                "by name, so the file is not what the folder says it is",
                remediation="Ask the publisher which file is meant; rename or remove it.",
                details={"format": file.format, "expected": list(expected)}))
    if lowered.endswith(UNSCANNED_SUFFIXES) and file.format not in ("json", "text"):
        findings.append(Finding(
            rule_id="CG-FORMAT-UNSCANNED", severity=Severity.HIGH, title="weight format crowguard does not examine",
            file=file.path, evidence=f"{file.format} content named {name}; some loaders of such files run "
            "embedded code (Keras Lambda layers, TensorFlow file ops, custom ONNX operators)",
            remediation="Remove it if the model does not need it; transformers 5 loads none of these."))
    elif file.format == "binary" and not lowered.endswith((*PICKLE_SUFFIXES, ".joblib")):
        findings.append(Finding(
            rule_id="CG-FORMAT-UNKNOWN-BINARY", severity=Severity.HIGH, title="binary content no parser recognises",
            file=file.path, evidence=f"{file.size} bytes named {name} are no format crowguard can tell (not "
            "safetensors, GGUF, a pickle, an archive, protobuf, text or an image); a loader pointed at it could "
            "read it as anything", remediation="Remove the file, or ask the publisher what it is and which "
            "loader reads it."))
    return findings


def _refused(file: InventoryFile, policy: Policy, rule: str, title: str, why: str) -> Finding:
    return Finding(rule_id=rule, severity=policy.violation_severity, title=title, file=file.path,
                   evidence=f"{file.format} content; {why} (policy {policy.name})",
                   remediation="Use safetensors weights (convert in an isolated sandbox, or ask the publisher), "
                   "or choose a policy that accepts this format.",
                   details={"format": file.format, "policy": policy.name})
