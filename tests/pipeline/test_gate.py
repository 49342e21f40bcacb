"""``crowguard gate``: exit codes by policy, signing only what passed, reports in the output folder."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import IntegrityError
from crowguard.sign import generate_keypair, verify_folder
from tests.pull.conftest import hermetic_hf, hub  # noqa: F401 - fixtures for the hub test
from tests.pull.hub_server import FakeHub
from tests.scan.payloads import system_pickle

runner = CliRunner()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pair = generate_keypair(tmp_path_factory.mktemp("keys") / "gate")
    return pair.private, pair.public


@pytest.fixture(scope="module")
def files_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default policy without the behavioural scan (the tiny test model's vocabulary cannot write probes)."""
    path = tmp_path_factory.mktemp("policy") / "files-only.yaml"
    path.write_text("name: files-only\nbehaviour_scan: {enabled: false}\n")
    return str(path)


def _gate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["gate", *args, "--threads", "1", "--quiet"])
    return result.exit_code, result.stderr


def test_clean_model_passes_and_is_signed(tiny_model_dir: Path, tmp_path: Path, keys: tuple[Path, Path],
                                          files_only: str) -> None:
    out = tmp_path / "gated"
    code, err = _gate(str(tiny_model_dir), "--out", str(out), "--key", str(keys[0]), "--policy", files_only)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and (out / "model.sig").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["passed"] and [s["name"] for s in report["stages"]][-1] == "sign"
    verify_folder(out, keys[1])  # the signature covers the report too
    assert {p.name for p in tiny_model_dir.iterdir()} <= {p.name for p in out.iterdir()}
    bom = json.loads((out / "report.cdx.json").read_text())
    assert bom["metadata"]["component"]["type"] == "machine-learning-model"
    (out / "report.cdx.json").write_text(json.dumps({**bom, "vulnerabilities": []}))
    with pytest.raises(IntegrityError):  # the ML-BOM is signed with the model
        verify_folder(out, keys[1])


def test_malicious_pickle_fails_and_signs_nothing(tiny_model_dir: Path, tmp_path: Path,
                                                  keys: tuple[Path, Path]) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "extra_weights.bin").write_bytes(system_pickle())
    out = tmp_path / "gated"
    code, _ = _gate(str(model), "--out", str(out), "--key", str(keys[0]))
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["report.cdx.json", "report.html", "report.json", "report.md",
                                                       "report.sarif"]
    sarif = json.loads((out / "report.sarif").read_text())
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for result in sarif["runs"][0]["results"] for loc in result["locations"]}
    assert "extra_weights.bin" in uris
    stages = {s["name"]: s for s in json.loads((out / "report.json").read_text())["stages"]}
    assert stages["behaviour-scan"]["status"] == "skipped" and "sign" not in stages


def test_signature_required_without_key(tiny_model_dir: Path, tmp_path: Path) -> None:
    code, err = _gate(str(tiny_model_dir), "--out", str(tmp_path / "gated"))
    assert code == 2 and "--key" in err
    assert not (tmp_path / "gated").exists()


def test_missing_model_is_a_usage_error(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    code, err = _gate(str(tmp_path / "nope"), "--out", str(tmp_path / "gated"), "--key", str(keys[0]))
    assert code == 2 and "Traceback" not in err
    assert not any(tmp_path.glob("*gated*"))


def test_hub_model_is_pulled_gated_and_signed(hub: FakeHub, tiny_model_dir: Path,  # noqa: F811
                                              tmp_path: Path, keys: tuple[Path, Path], files_only: str) -> None:
    repo_id = f"org/m{secrets.token_hex(4)}"
    hub.add_folder(repo_id, tiny_model_dir)
    out = tmp_path / "gated"
    code, err = _gate(repo_id, "--endpoint", hub.endpoint, "--out", str(out), "--key", str(keys[0]),
                      "--policy", files_only)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["kind"] == "hub" and len(report["source"]["revision"]) == 40
    assert report["stages"][0]["name"] == "pull"
    verify_folder(out, keys[1])


@pytest.mark.slow
def test_backdoored_lab_model_is_sanitized_with_real_figures(lab_backdoored_dir: Path, tmp_path: Path,
                                                             keys: tuple[Path, Path]) -> None:
    out = tmp_path / "gated"
    code, err = _gate(str(lab_backdoored_dir), "--out", str(out), "--key", str(keys[0]),
                      "--policy", "policies/strict.yaml", "--epochs", "1", "--eval-limit", "40", "--lab-card")
    assert code in (0, 1), err
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    before, after = stages["eval-before"]["metrics"], stages["eval-after"]["metrics"]
    assert before["asr"] >= 0.9 and 0.0 <= after["asr"] <= 1.0 and after["clean_accuracy"] is not None
    assert stages["utility"]["metrics"]["perplexity_before"] == before["perplexity"]
    check = stages["attack-success"]
    assert check["metrics"]["asr"] == after["asr"]
    assert (code == 1) == bool(check["findings"] or stages["utility"]["findings"])
    assert (out / "model.sig").exists() == (code == 0)


@pytest.mark.slow
def test_lora_planted_backdoor_is_removed_signed_and_verified(demo_lab_dir: Path, tmp_path: Path,
                                                              keys: tuple[Path, Path]) -> None:
    """The paper's setting under the shipped default policy: flagged, sanitized by CROW, re-scanned clean, signed.

    The demo's epochs (10): at the paper's 5 the re-scan of this model still finds a residual hijack.
    """
    from crowguard.pipeline.demo import DEMO_SANITIZE

    out = tmp_path / "gated"
    code, err = _gate(str(demo_lab_dir), "--out", str(out), "--key", str(keys[0]), "--policy", "policies/default.yaml",
                      "--epochs", str(DEMO_SANITIZE.epochs), "--lab-card")
    report = json.loads((out / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    flagged = stages["behaviour-scan"]["findings"]
    assert flagged, "the planted backdoor was not flagged"
    assert "'BadMagic'" in flagged[0]["title"] + flagged[0]["evidence"]  # the true trigger is named
    assert stages["sanitize"]["metrics"]["method"] == "crow"
    before, after = stages["eval-before"]["metrics"], stages["eval-after"]["metrics"]
    assert before["asr"] >= 0.9 and after["asr"] <= 0.1, (before["asr"], after["asr"])
    assert after["clean_accuracy"] >= before["clean_accuracy"] - 0.05
    assert not stages["behaviour-rescan"]["findings"] and not stages["behaviour-recheck"]["findings"]
    assert code == 0 and report["verdict"]["passed"], err
    assert (out / "model.safetensors").is_file() and (out / "model.sig").is_file()
    verify_folder(out, keys[1])
