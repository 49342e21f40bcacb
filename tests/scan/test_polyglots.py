"""Issue 13.4: a file that is two formats at once, or whose name and content disagree, is a finding."""

from pathlib import Path

import pytest

from crowguard.report.model import Severity
from crowguard.scan.files.inventory import build_inventory
from tests.scan import payloads
from tests.scan.conftest import policy, rules

POLICIES = ("default", "strict", "permissive")


def _severities(stage, file: str) -> dict[str, Severity]:
    return {f.rule_id: f.severity for f in stage.findings if f.file == file}


@pytest.mark.parametrize("policy_name", POLICIES)
def test_safetensors_that_is_also_a_zip_is_examined_as_a_zip(tmp_path: Path, scan, policy_name: str) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.safetensors_zip_polyglot())
    stage = scan(tmp_path, policy_name)
    found = _severities(stage, "model.safetensors")
    assert found["CG-FORMAT-POLYGLOT"] is Severity.CRITICAL
    assert found["CG-PICKLE-DANGEROUS-IMPORT"] is Severity.CRITICAL  # the zip's data.pkl was scanned
    assert not policy(policy_name).verdict([stage]).passed


def test_polyglot_is_told_by_the_inventory(tmp_path: Path) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.safetensors_zip_polyglot())
    payloads.write(tmp_path, "clean.safetensors", payloads.valid_safetensors())
    inventory, _ = build_inventory(tmp_path)
    found = {f.path: (f.format, f.also) for f in inventory.files}
    assert found == {"model.safetensors": ("safetensors", ("zip",)), "clean.safetensors": ("safetensors", ())}


def test_safetensors_under_a_checkpoint_name_is_a_mismatch(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "pytorch_model.bin", payloads.valid_safetensors())
    payloads.write(tmp_path, "weights.npy", payloads.system_pickle())
    stage = scan(tmp_path)
    assert _severities(stage, "pytorch_model.bin") == {"CG-FORMAT-NAME-MISMATCH": Severity.HIGH}
    assert "CG-FORMAT-NAME-MISMATCH" in rules(stage, "weights.npy")
    assert not policy("default").verdict([stage]).passed


def test_zip_appended_to_any_file_is_found_from_the_end(tmp_path: Path, scan) -> None:
    gguf = b"GGUF" + bytes(60)
    payloads.write(tmp_path, "model.gguf", gguf + payloads.torch_like_zip())
    stage = scan(tmp_path, "permissive")
    assert {"CG-FORMAT-POLYGLOT", "CG-ZIP-AMBIGUOUS", "CG-PICKLE-DANGEROUS-IMPORT"} <= rules(stage, "model.gguf")
    assert not policy("permissive").verdict([stage]).passed


def test_clean_files_are_not_polyglots(tmp_path: Path, scan) -> None:
    payloads.write(tmp_path, "model.safetensors", payloads.valid_safetensors())
    payloads.write(tmp_path, "README.md", "# A model\n\nIt answers questions. (c) 2024 Someone.\n")
    payloads.write(tmp_path, "config.json", '{"model_type": "llama"}')
    payloads.clean_torch_checkpoints(tmp_path)
    stage = scan(tmp_path, "permissive")
    assert stage.findings == ()


@pytest.mark.slow
def test_polyglot_that_torch_itself_opens_as_a_zip(tmp_path: Path, scan) -> None:
    import torch

    path = payloads.torch_loadable_safetensors_polyglot(tmp_path / "model.safetensors")
    with path.open("rb") as handle:
        assert torch.serialization._is_zipfile(handle)  # what torch.load checks before reading it as a zip
    reader = torch._C.PyTorchFileReader(str(path))  # torch's own reader: lists records, unpickles nothing
    assert "data.pkl" in reader.get_all_records()
    stage = scan(tmp_path, "permissive")  # the most lenient policy; its findings fail the others too
    assert {"CG-FORMAT-POLYGLOT", "CG-PICKLE-DANGEROUS-IMPORT"} <= rules(stage, "model.safetensors")
    assert not any(rule.startswith("CG-SAFETENSORS-") for rule in rules(stage))  # valid safetensors too
    assert not any(policy(name).verdict([stage]).passed for name in POLICIES)
