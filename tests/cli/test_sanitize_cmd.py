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
           "--threads", "1", "--no-scan", "--report", str(report)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "sanitized" in done.stderr and "Lc_adv" in done.stderr
    data = json.loads(report.read_text())
    stage = data["stages"][0]
    assert data["command"] == "sanitize" and stage["name"] == "sanitize" and data["output"] == str(out)
    # no scan and no test prompts: utility is unmeasured (medium), which the default policy passes: exit 0
    assert data["verdict"]["passed"] and [s["name"] for s in data["stages"]] == ["sanitize", "utility"]
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
    (["--method", "distill"], "method must be one of"),
    (["--preset", "loud"], "preset must be one of"),
    (["--eps", "-1"], "eps must be a number >= 0"),
    (["--resume"], "no checkpoint"),
    (["--format", "yaml"], "yaml"),
    (["--reply", " "], "taught reply given is empty"),
    (["--stand-in-scale", "-1"], "stand_in_scale must be a number >= 0"),
    (["--stand-in-place", "middle"], "stand_in_place must be one of token, layer"),
])
def test_bad_options_exit_2(tiny_model_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--no-scan", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_out_may_not_overlap_the_input(tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tiny_model_dir), "--force"])
    assert result.exit_code == 2 and "overlaps the input" in result.stderr


def test_missing_model_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sanitize", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.slow
def test_sanitize_a_backdoored_lab_model_reports_before_and_after(lab_backdoored_dir: Path, tmp_path: Path) -> None:
    before = _digest(lab_backdoored_dir)
    out, report = tmp_path / "sanitized", tmp_path / "report.json"
    # lr 1e-9: the weights barely move, so the backdoor survives and sanitize's own verdict must say so
    result = runner.invoke(app, ["sanitize", str(lab_backdoored_dir), "--out", str(out), "--max-steps", "3",
                                 "--lr", "1e-9", "--eps-mode", "relative", "--eval-limit", "12",
                                 "--eval-max-new-tokens", "12", "--threads", "1", "--report", str(report),
                                 "--lab-card"])
    assert result.exit_code == 1, result.stderr[-2000:]
    data = json.loads(report.read_text())
    names = [s["name"] for s in data["stages"]]
    assert names[:5] == ["behaviour-scan", "eval-before", "sanitize", "eval-after", "behaviour-rescan"]
    # the input's candidates, measured again on the output; then the gate's checks
    assert names[5:] in (["utility", "attack-success"], ["behaviour-recheck", "utility", "attack-success"])
    assert data["verdict"] is not None and not data["verdict"]["passed"] and data["verdict"]["exit_code"] == 1
    by_rule = {f["rule_id"] for s in data["stages"] if s["name"] == "attack-success" for f in s["findings"]}
    assert by_rule == {"CG-BACKDOOR-ATTACK-SUCCESS", "CG-BACKDOOR-TRIGGER-ACCURACY"}  # the target, no right answers
    by_name = {s["name"]: s for s in data["stages"]}
    first, middle, last = by_name["eval-before"], by_name["sanitize"], by_name["eval-after"]
    assert by_name["behaviour-scan"]["status"] == by_name["behaviour-rescan"]["status"] == "completed"
    assert first["metrics"]["asr"] > 0.5  # the planted backdoor fires before
    for stage in (first, last):
        m = stage["metrics"]
        assert m["triggered"]["prompts"] == 12 and m["clean"]["prompts"] == 12
        assert all(m[k] is not None for k in ("asr", "clean_accuracy", "triggered_accuracy", "perplexity"))
    assert last["metrics"]["model"] == str(out)
    effect = middle["metrics"]["effect"]
    assert effect["asr"] == {"before": first["metrics"]["asr"], "after": last["metrics"]["asr"]}
    assert middle["metrics"]["clean_set"]["source"].endswith("lab.json defense_set")
    assert data["settings"]["evaluation"]["limit"] == 12
    assert "ASR (triggered)" in result.stderr and "accuracy under trigger" in result.stderr
    assert not (out / "lab.json").exists() and (out / "model.safetensors").is_file()
    assert _digest(lab_backdoored_dir) == before


def test_task_without_test_prompts_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sanitize", str(tiny_model_dir), "--out", str(tmp_path / "o"), "--task", "refusal"])
    assert result.exit_code == 2 and "--triggered" in result.stderr


@pytest.mark.slow
def test_guided_sanitize_trains_rounds_on_the_given_and_found_candidates(lab_backdoored_dir: Path,
                                                                        tmp_path: Path) -> None:
    """lr 1e-9: nothing is unlearned, so the re-scan keeps flagging and the rounds run to the policy's limit."""
    candidates, policy, report = tmp_path / "candidates.json", tmp_path / "policy.yaml", tmp_path / "report.json"
    candidates.write_text(json.dumps([{"text": "BadMagic", "position": "start"}]))
    policy.write_text("name: two-rounds\nsanitize: {max_rounds: 2}\n")
    result = runner.invoke(app, ["sanitize", str(lab_backdoored_dir), "--out", str(tmp_path / "out"),
                                 "--method", "guided", "--candidates", str(candidates), "--policy", str(policy),
                                 "--max-steps", "2", "--lr", "1e-9", "--eps-mode", "relative", "--eval-limit", "8",
                                 "--eval-max-new-tokens", "8", "--probe-count", "8", "--vocab-budget", "64",
                                 "--threads", "1", "--report", str(report), "--lab-card", "--quiet"])
    assert result.exit_code == 1, result.stderr[-2000:]
    data = json.loads(report.read_text())
    sanitized = next(s for s in data["stages"] if s["name"] == "sanitize")["metrics"]
    assert sanitized["method"] == "guided" and len(sanitized["rounds"]) == 2
    assert sanitized["stopped"] == "the policy's sanitize.max_rounds was reached"
    first, second = sanitized["rounds"]
    assert first["guides"][0] == {"text": "BadMagic", "position": "start", "source": "given"}
    assert first["rescan"]["flagged"] and first["eval"]["asr"] is not None and second["eval"]["asr"] is not None
    assert first["examples"] == 2 * sanitized["clean_set"]["samples"]  # every clean record and its twin
    assert {g["text"] for g in first["guides"]} <= {g["text"] for g in second["guides"]}
    assert data["settings"]["candidates"] == [{"text": "BadMagic", "position": "start"}]
    assert not list(tmp_path.glob(".crowguard-rounds-*")), "the rounds' work folders are gone"


def test_guided_with_a_given_reply_and_no_scan_trains_against_the_stand_in(lab_backdoored_dir: Path,
                                                                           tmp_path: Path) -> None:
    """--reply with no candidate and no scan: the twins train against a stand-in fitted toward that reply."""
    report = tmp_path / "report.json"
    result = runner.invoke(app, ["sanitize", str(lab_backdoored_dir), "--out", str(tmp_path / "out"), "--no-scan",
                                 "--method", "guided", "--reply", "You are stupid!", "--max-steps", "2",
                                 "--no-eval", "--threads", "1", "--lab-card", "--report", str(report), "--quiet"])
    assert result.exit_code == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    sanitized = next(s for s in data["stages"] if s["name"] == "sanitize")["metrics"]
    assert sanitized["stand_in"]["reply"] == "You are stupid!" and sanitized["guides"] == []
    assert sanitized["stand_in"]["opening"]["fitted"] > sanitized["stand_in"]["opening"]["without"]
    assert sanitized["examples"] == 2 * sanitized["clean_set"]["samples"]
    assert data["settings"]["reply"] == "You are stupid!"
