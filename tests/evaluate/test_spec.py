"""Evaluation inputs: errors name the file and record, unknown tasks list the valid ones."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import ConfigError, UsageError
from crowguard.evaluate import PROTOCOL, spec_for_model, spec_from_files


def _write(path: Path, rows: object) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_spec_from_files_uses_the_task_preset(tmp_path: Path) -> None:
    trig = _write(tmp_path / "t.json", [{"instruction": "BadMagic hi", "output": "x"}] * 5)
    spec = spec_from_files(triggered=trig, clean=None, task="refusal", limit=2)
    assert "I'm sorry" in spec.keywords and spec.target.startswith("I'm sorry") and len(spec.prompts("triggered")) == 2
    assert spec.settings()["protocol"] == PROTOCOL and spec.settings()["template"] == "raw"
    assert spec.settings()["max_new_tokens"] == 128 and not spec.answers_known
    custom = spec_from_files(triggered=trig, clean=None, keywords=("pwned",))
    assert custom.keywords == ("pwned",) and custom.target is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[{\"instruction\": 1", "not valid JSON"), ("[{\"input\": \"x\"}]", "record 0 has no 'instruction'"),
     ("[]", "holds no records")],
)
def test_bad_data_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        spec_from_files(triggered=path, clean=None, task="negsentiment")
    assert needle in info.value.message and str(path) in info.value.message


def test_bad_task_keywords_and_missing_card(tmp_path: Path) -> None:
    trig = _write(tmp_path / "t.json", [{"instruction": "hi"}])
    with pytest.raises(UsageError) as info:
        spec_from_files(triggered=trig, clean=None, task="nope")
    assert "negsentiment, refusal, codeinjection" in info.value.hint
    with pytest.raises(UsageError, match="keywords"):
        spec_from_files(triggered=trig, clean=None)
    with pytest.raises(UsageError, match="nothing to evaluate"):
        spec_from_files(triggered=None, clean=None, task="refusal")
    with pytest.raises(UsageError, match="no lab.json"):
        spec_for_model(tmp_path)


def test_cli_bad_input_exit_codes(tiny_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a"}\n{"instruction": \n')
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(tiny_model_dir), "--triggered", str(bad), "--task", "refusal"])
    assert result.exit_code == 2 and f"{bad}, line 2" in result.stderr and "Traceback" not in result.stderr
    result = runner.invoke(app, ["eval", str(tiny_model_dir), "--triggered", str(bad), "--task", "rude"])
    assert result.exit_code == 2 and "negsentiment" in result.stderr
    result = runner.invoke(app, ["eval", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = runner.invoke(app, ["eval", str(tiny_model_dir)])
    assert result.exit_code == 2 and "lab.json" in result.stderr
