"""run_scan: source pinned by sha256, verdict by policy, further stages plug in, fail closed."""

import hashlib
from pathlib import Path

import pytest

from crowguard.errors import ModelFolderError
from crowguard.pipeline import run_scan
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.model import Finding, Severity, StageResult
from tests.scan import payloads

DEFAULT = load_policy(builtin_policy("default"))


def test_clean_model_passes(tiny_model_dir: Path) -> None:
    report = run_scan(tiny_model_dir, DEFAULT)
    assert report.verdict is not None and (report.verdict.passed, report.verdict.exit_code) == (True, 0)
    assert report.command == "scan" and report.settings["policy"]["name"] == "default"
    weights = next(f for f in report.source.files if f.path == "model.safetensors")
    digest = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert (weights.sha256, weights.format) == (digest, "safetensors")


def test_further_stage_plugs_in(tiny_model_dir: Path) -> None:
    seen = []

    def behaviour(folder: Path, policy, prior: tuple[StageResult, ...]) -> StageResult:
        seen.append([s.name for s in prior])
        backdoor = Finding(rule_id="CG-BEHAVIOUR-TRIGGER", severity=Severity.HIGH, title="trigger",
                           evidence="e", remediation="r")
        return StageResult(name="behaviour-scan", findings=(backdoor,))

    report = run_scan(tiny_model_dir, DEFAULT, stages=[behaviour])
    assert seen == [["file-scan"]]
    assert [s.name for s in report.stages] == ["file-scan", "behaviour-scan"]
    assert report.verdict.exit_code == 1


def test_failed_stage_fails_closed(tiny_model_dir: Path) -> None:
    def broken(folder, policy, prior) -> StageResult:
        return StageResult(name="behaviour-scan", status="failed", errors=("out of memory",))

    assert run_scan(tiny_model_dir, DEFAULT, stages=[broken]).verdict.exit_code == 3


def test_malicious_folder_fails(tmp_path: Path) -> None:
    payloads.write(tmp_path, "pytorch_model.bin", payloads.system_pickle())
    report = run_scan(tmp_path, DEFAULT)
    assert report.verdict.exit_code == 1
    assert any("CG-PICKLE-DANGEROUS-IMPORT" in reason for reason in report.verdict.reasons)


@pytest.mark.parametrize("kind", ["missing", "file", "empty"])
def test_bad_model_path_is_a_usage_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "model"
    if kind == "file":
        path.write_text("x")
    elif kind == "empty":
        path.mkdir()
    with pytest.raises(ModelFolderError) as info:
        run_scan(path, DEFAULT)
    assert str(path) in info.value.message
