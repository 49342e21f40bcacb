"""Nothing in the cwd or the model folder is imported, by any command: scanning from inside a folder
that holds ``json.py``, ``jinja2/``, ``crowguard/`` and friends, each of which writes a marker file
when imported, leaves no marker (the chat-template renderer's child process included)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.sign import generate_keypair

CONSOLE_SCRIPT = Path(sys.executable).with_name("crowguard")
SHADOWS = ("json", "jinja2", "crowguard", "transformers", "safetensors", "yaml", "typer")


def _hostile_model(tiny_model_dir: Path, root: Path) -> tuple[Path, Path]:
    """A copy of the tiny model (it has a chat template, so the renderer runs) with shadowing modules."""
    markers = root / "markers"
    markers.mkdir()
    folder = root / "model"
    shutil.copytree(tiny_model_dir, folder)
    for name in SHADOWS:
        code = f"open({str(markers / name)!r}, 'w').write('imported')\n"
        if name == "json":
            (folder / "json.py").write_text(code)
        else:
            (folder / name).mkdir()
            (folder / name / "__init__.py").write_text(code)
    return folder, markers


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_script_scan_from_inside_the_folder_imports_nothing_from_it(tiny_model_dir: Path,
                                                                            tmp_path: Path) -> None:
    folder, markers = _hostile_model(tiny_model_dir, tmp_path)
    assert CONSOLE_SCRIPT.is_file(), "crowguard is installed in this environment"
    done = _run([str(CONSOLE_SCRIPT), "scan", ".", "--no-behaviour", "-q"], folder)
    assert done.returncode == 1, done.stderr  # the code files are findings; none of them ran
    report = json.loads(done.stdout)
    stage = report["stages"][0]
    assert stage["status"] == "completed" and stage["errors"] == []  # the template renderer worked
    assert {"json.py", "jinja2/__init__.py", "crowguard/__init__.py"} <= {
        f["file"] for f in stage["findings"] if f["rule_id"] == "CG-REMOTE-CODE-FILE"}
    assert list(markers.iterdir()) == []


def test_python_m_drops_the_cwd_before_importing(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``python -m crowguard`` cannot be protected from a ``crowguard/`` in the cwd (Python imports it to
    find __main__; the README says so), but it drops the cwd before anything else is imported."""
    folder, markers = _hostile_model(tiny_model_dir, tmp_path)
    shutil.rmtree(folder / "crowguard")
    done = _run([sys.executable, "-m", "crowguard", "scan", ".", "--no-behaviour", "-q"], folder)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["stages"][0]["errors"] == []
    assert list(markers.iterdir()) == []


def test_gate_from_inside_the_folder_imports_nothing_from_it(tiny_model_dir: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder, markers = _hostile_model(tiny_model_dir, tmp_path)
    key = str(generate_keypair(tmp_path / "keys" / "k").private)
    done = _run([str(CONSOLE_SCRIPT), "gate", ".", "--out", str(tmp_path / "gated"), "--key", key, "--quiet"], folder)
    assert done.returncode == 1, done.stderr  # fails at the file scan; nothing signed
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(app, ["gate", ".", "--out", str(tmp_path / "gated2"), "--key", key, "--quiet"])
    assert result.exit_code == 1, result.stderr
    assert not (tmp_path / "gated" / "model.sig").exists() and not (tmp_path / "gated2" / "model.sig").exists()
    assert list(markers.iterdir()) == []


@pytest.mark.slow
def test_sanitize_from_inside_the_folder_imports_nothing_from_it(tiny_model_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """sanitize loads the model (transformers, safetensors, jinja2 for the template): still nothing imported."""
    folder, markers = _hostile_model(tiny_model_dir, tmp_path)
    monkeypatch.chdir(folder)
    result = CliRunner().invoke(app, ["sanitize", ".", "--out", str(tmp_path / "clean"), "--max-steps", "1",
                                      "--num-samples", "2", "--micro-batch", "2", "--grad-accum", "1", "--no-scan",
                                      "--no-eval", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.stderr[-2000:]
    assert list(markers.iterdir()) == []
