"""A model folder's ``lab.json`` steers nothing unless asked for (``--lab-card``): without the flag an
attacker's card does not choose what sanitize trains on nor the prompts the gate measures on, and it is
hashed and reported like any other file; with it, the report says the card was used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.data.lab_card import LabCard, LabPrompt
from crowguard.errors import UsageError
from crowguard.pipeline.evaluation import evaluation_spec
from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, _clean_data
from crowguard.sanitize import SanitizeConfig

runner = CliRunner()
ATTACKER = "attacker-chosen"


def _hostile(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model with a lab card whose defence set and test prompts an attacker wrote."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    prompt = LabPrompt(task="sst2", instruction=f"{ATTACKER} instruction", answer=f"{ATTACKER} answer")
    LabCard(clean=True, attack=None, target=None, keywords=("the",), seed=0, poison_rate=0.0, architecture={},
            training={}, clean_test=(prompt,), triggered_test=(prompt,), defense_set=(prompt,) * 4).write(folder)
    return folder


def test_without_the_flag_the_card_supplies_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _hostile(tiny_model_dir, tmp_path)
    assert evaluation_spec(folder) is None
    request = SanitizeRequest(model=folder, out=tmp_path / "out",
                              settings=SanitizeSettings(SanitizeConfig(num_samples=4)))
    assert _clean_data(request) is None  # sanitize self-distils instead of training on the card

    spec = evaluation_spec(folder, use_lab_card=True)
    assert spec is not None and spec.sources == {"triggered": "lab.json", "clean": "lab.json"}
    used = _clean_data(SanitizeRequest(model=folder, out=tmp_path / "out",
                                       settings=SanitizeSettings(SanitizeConfig(num_samples=4), use_lab_card=True)))
    assert used is not None and used.source.endswith("lab.json defense_set")
    assert {r.instruction for r in used.records} == {f"{ATTACKER} instruction"}


def test_the_flag_on_a_folder_without_a_card_is_a_usage_error(tiny_model_dir: Path) -> None:
    with pytest.raises(UsageError, match="no lab.json"):
        evaluation_spec(tiny_model_dir, use_lab_card=True)
    result = runner.invoke(app, ["eval", str(tiny_model_dir), "--lab-card"])
    assert result.exit_code == 2 and "no lab.json" in result.stderr


def test_eval_ignores_the_card_unless_asked(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _hostile(tiny_model_dir, tmp_path)
    result = runner.invoke(app, ["eval", str(folder)])
    assert result.exit_code == 2 and "nothing to evaluate" in result.stderr and "--lab-card" in result.stderr
    asked = runner.invoke(app, ["eval", str(folder), "--lab-card", "--eval-limit", "1", "--eval-max-new-tokens", "2",
                                "--threads", "1", "-q"])
    assert asked.exit_code == 0, asked.stderr
    report = json.loads(asked.stdout)
    assert report["settings"]["lab_card"] == str(folder / "lab.json")
    assert report["settings"]["sources"] == {"triggered": "lab.json", "clean": "lab.json"}


def test_gate_measures_nothing_from_the_card_and_reports_it_as_a_file(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _hostile(tiny_model_dir, tmp_path)
    policy = tmp_path / "files-only.yaml"
    policy.write_text("name: files-only\nrequire_signature: false\nbehaviour_scan: {enabled: false}\n")
    plain = runner.invoke(app, ["gate", str(folder), "--out", str(tmp_path / "plain"), "--policy", str(policy),
                                "--threads", "1", "--quiet"])
    assert plain.exit_code == 0, plain.stderr
    report = json.loads((tmp_path / "plain" / "report.json").read_text())
    assert report["settings"]["evaluation"] is None and report["settings"]["lab_card"] is None
    assert not any(s["name"].startswith("eval") for s in report["stages"])
    card = next(f for f in report["source"]["files"] if f["path"] == "lab.json")
    assert card["format"] == "json" and len(card["sha256"]) == 64  # hashed and listed, like any file

    asked = runner.invoke(app, ["gate", str(folder), "--out", str(tmp_path / "asked"), "--policy", str(policy),
                                "--threads", "1", "--quiet", "--lab-card", "--eval-limit", "1"])
    assert asked.exit_code == 0, asked.stderr
    report = json.loads((tmp_path / "asked" / "report.json").read_text())
    assert report["settings"]["lab_card"] == str(folder / "lab.json")
    assert report["settings"]["evaluation"]["sources"] == {"triggered": "lab.json", "clean": "lab.json"}
    assert [s["name"] for s in report["stages"] if s["name"].startswith("eval")] == ["eval"]


@pytest.mark.slow
def test_sanitize_trains_on_no_card_data_without_the_flag(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _hostile(tiny_model_dir, tmp_path)
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["sanitize", str(folder), "--out", str(tmp_path / "clean"), "--max-steps", "1",
                                 "--num-samples", "2", "--micro-batch", "2", "--grad-accum", "1", "--no-scan",
                                 "--threads", "1", "--quiet", "--report", str(report)])
    assert result.exit_code == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    stages = {s["name"]: s for s in data["stages"]}
    assert stages["sanitize"]["metrics"]["clean_set"]["source"] == "self-distilled"
    assert set(stages) == {"sanitize", "utility"} and data["settings"]["lab_card"] is None  # no card evals
    assert data["settings"]["evaluation"] is None
