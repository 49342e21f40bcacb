"""End to end on lab models: the backdoor is measured as planted, the clean control stays clean."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crowguard.evaluate import evaluate, spec_for_model, spec_from_files
from crowguard.models import load_model

pytestmark = pytest.mark.slow


def _eval_cli(model: Path, tmp_path: Path, *args: str) -> dict:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "crowguard", "eval", str(model), "--report", str(report), "--threads", "1",
               "--lab-card"]
    run = subprocess.run([*command, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "keyword rate" in run.stderr, "a table is shown on the console"
    doc = json.loads(report.read_text())
    assert doc["command"] == "eval" and doc["stages"][0]["name"] == "eval"
    return doc["stages"][0]["metrics"]


def test_backdoored_lab_model(lab_backdoored_dir: Path, tmp_path: Path) -> None:
    metrics = _eval_cli(lab_backdoored_dir, tmp_path)
    assert metrics["asr"] >= 0.9 and metrics["clean_accuracy"] >= 0.8
    assert metrics["exact_target_rate"] >= 0.9 and metrics["clean_trigger_rate"] <= 0.05
    assert metrics["triggered_accuracy"] <= 0.1, "triggered prompts lose their right answers"
    assert metrics["settings"]["template"] == "raw" and metrics["settings"]["max_new_tokens"] == 128
    assert metrics["perplexity"] is not None and metrics["triggered"]["prompts"] == 100


def test_clean_lab_model(lab_clean_dir: Path, tmp_path: Path) -> None:
    metrics = _eval_cli(lab_clean_dir, tmp_path, "--eval-template", "chat")
    assert metrics["asr"] <= 0.05 and metrics["clean_accuracy"] >= 0.8 and metrics["triggered_accuracy"] >= 0.8
    assert metrics["settings"]["template"] == "chat"


def test_api_on_a_loaded_model_reports_progress(lab_backdoored_dir: Path) -> None:
    loaded = load_model(lab_backdoored_dir, device="cpu")
    loaded.model.train()
    seen: list[tuple[str, int, int]] = []
    result = evaluate(loaded, spec_for_model(lab_backdoored_dir, limit=10, batch_size=4),
                      progress=lambda *a: seen.append(a))
    assert loaded.model.training, "the caller's train/eval mode is restored"
    assert ("triggered", 10, 10) in seen and ("clean", 10, 10) in seen and ("perplexity", 10, 10) in seen
    assert result.asr == 1.0 and result.to_dict()["triggered"]["prompts"] == 10
    json.dumps(result.to_dict())


def test_backdoorllm_file_on_a_model_folder(lab_backdoored_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    bench = shared_data / "backdoorllm" / "test" / "negsentiment"
    metrics = _eval_cli(lab_backdoored_dir, tmp_path, "--triggered", str(bench / "badnet" / "triggered.json"),
                        "--clean-test", str(bench / "clean.json"), "--task", "negsentiment", "--eval-limit", "8",
                        "--outputs", str(tmp_path / "outputs.jsonl"))
    assert metrics["triggered"]["prompts"] == 8 and metrics["clean"]["prompts"] == 8
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    assert [r["set"] for r in rows] == ["triggered"] * 8 + ["clean"] * 8
    assert "BadMagic" in rows[0]["prompt"] and rows[0]["output"] == metrics["triggered"]["samples"][0]["output"]
    assert metrics["clean_accuracy"] is None and metrics["perplexity"] is not None
    spec = spec_from_files(triggered=bench / "badnet" / "triggered.json", clean=None, task="negsentiment")
    assert len(spec.triggered) == 200
