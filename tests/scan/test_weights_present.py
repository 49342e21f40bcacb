"""A folder with no weight file crowguard can examine fails the scan under every shipped policy."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.policy import builtin_policy, load_policy
from crowguard.scan.files.stage import run_file_scan
from tests.scan import payloads


@pytest.mark.parametrize("policy", ["default", "strict", "permissive"])
def test_config_only_folder_fails_every_policy(tmp_path: Path, policy: str) -> None:
    payloads.write(tmp_path, "config.json", json.dumps({"model_type": "llama"}))
    payloads.write(tmp_path, "tokenizer.json", "{}")
    payloads.write(tmp_path, "weights.dat", os.urandom(64))  # bytes of no format crowguard examines
    loaded = load_policy(builtin_policy(policy))
    stage = run_file_scan(tmp_path, loaded).stage
    finding = next(f for f in stage.findings if f.rule_id == "CG-MODEL-NO-WEIGHTS")
    assert finding.severity == loaded.violation_severity and not loaded.verdict([stage]).passed
    result = CliRunner().invoke(app, ["scan", str(tmp_path), "--no-behaviour", "--policy", f"policies/{policy}.yaml",
                                      "-q"])
    assert result.exit_code == 1, result.stderr


def test_a_safetensors_file_is_weights_whatever_its_name(tmp_path: Path) -> None:
    payloads.write(tmp_path, "config.json", "{}")
    payloads.write(tmp_path, "weights.dat", payloads.valid_safetensors())
    stage = run_file_scan(tmp_path, load_policy(builtin_policy("default"))).stage
    assert "CG-MODEL-NO-WEIGHTS" not in {f.rule_id for f in stage.findings}
