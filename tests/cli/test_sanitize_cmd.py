"""``crowguard sanitize`` end to end on a tiny model, and its refusals (exit 2, one line, no traceback)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app

runner = CliRunner()


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_sanitize_writes_a_loadable_model_and_a_report(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    before = _digest(tiny_model_dir)
    out, report = tmp_path / "clean-model", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "crowguard", "sanitize", str(tiny_model_dir), "--out", str(out), "--num-samples", "4",
           "--max-steps", "2", "--micro-batch", "2", "--grad-accum", "1", "--eps-mode", "relative",
           "--threads", "1", "--report", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sanitized" in done.stderr and "Lc_adv" in done.stderr
    data = json.loads(report.read_text())
    stage = data["stages"][0]
    assert data["command"] == "sanitize" and stage["name"] == "sanitize" and data["output"] == str(out)
    m = stage["metrics"]
    assert m["clean_set"]["source"] == "self-distilled" and m["clean_set"]["decoding"] == "greedy"
    assert m["steps"] == 2 and len(m["curve"]) == 2 and m["peak_memory"]["bytes"] > 0
    assert {"ce", "lc", "lc_adv", "lr"} <= set(m["curve"][0])
    assert data["settings"]["alpha"] == 5.5 and data["settings"]["eps_mode"] == "relative"
    assert sorted(p.suffix for p in out.glob("model*.safetensors")) == [".safetensors"]
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
    assert _digest(tiny_model_dir) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partials, no checkpoint

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize("args,message", [
    (["--method", "prune"], "method must be one of"),
    (["--preset", "loud"], "preset must be one of"),
    (["--eps", "-1"], "eps must be a number >= 0"),
    (["--resume"], "no checkpoint"),
    (["--format", "yaml"], "yaml"),
])
def test_bad_options_exit_2(tiny_model_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_out_may_not_overlap_the_input(tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tiny_model_dir), "--force"])
    assert result.exit_code == 2 and "overlaps the input" in result.stderr


def test_missing_model_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sanitize", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
