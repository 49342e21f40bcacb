"""The policy decides which weight formats pass; refusals always fail the gate."""

import struct
from pathlib import Path

from crowguard.report.model import Severity
from tests.scan import payloads


def _findings(stage):
    return {(f.file, f.rule_id): f.severity for f in stage.findings}


def test_formats_against_policies(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model.gguf", b"GGUF" + struct.pack("<I", 3) + bytes(24))
    payloads.write(tmp_path, "model.onnx", bytes(range(200)))
    payloads.write(tmp_path, "model.safetensors", payloads.valid_safetensors())
    payloads.clean_torch_checkpoints(tmp_path)
    default = _findings(scan(tmp_path))
    assert default == {
        ("model.gguf", "CG-POLICY-WEIGHT-FORMAT"): Severity.HIGH,
        ("model.onnx", "CG-FORMAT-UNSCANNED"): Severity.HIGH,
        ("pytorch_model.bin", "CG-POLICY-PICKLE"): Severity.HIGH,
        ("legacy.pt", "CG-POLICY-PICKLE"): Severity.HIGH,
    }
    assert _findings(scan(tmp_path, "permissive")) == {("model.onnx", "CG-FORMAT-UNSCANNED"): Severity.HIGH}
    pickles_not_weights = _findings(scan(tmp_path, "permissive", allowed_weight_formats=("safetensors", "gguf")))
    assert pickles_not_weights[("legacy.pt", "CG-POLICY-WEIGHT-FORMAT")] is Severity.CRITICAL
    strict_critical = _findings(scan(tmp_path, "default", fail_on=Severity.CRITICAL))
    assert strict_critical[("pytorch_model.bin", "CG-POLICY-PICKLE")] is Severity.CRITICAL
