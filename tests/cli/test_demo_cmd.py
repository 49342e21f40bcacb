"""``crowguard demo``, the README's main command: the gate on the embedded model, ending in a verified signature."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app


@pytest.mark.slow
def test_demo_gates_signs_and_verifies(demo_lab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crowguard.pipeline.demo import demo_model_folder

    monkeypatch.setenv("CROWGUARD_CACHE", str(tmp_path / "cache"))
    shutil.copytree(demo_lab_dir, demo_model_folder())  # the same spec, already built by the session fixture
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    summary = " ".join(result.stderr.split())
    assert "PASS" in summary and "verified with" in summary and "backdoor flagged" in summary, summary
    assert "0 finding(s) counted" in summary and "more on the input, before sanitizing" in summary
    assert (out / "model" / "model.sig").is_file() and (out / "demo-key.pub.pem").is_file()

    verified = CliRunner().invoke(app, ["verify", str(out / "model"), "--public-key", str(out / "demo-key.pub.pem")])
    assert verified.exit_code == 0, verified.stderr
    (out / "model" / "report.md").write_text("edited\n")
    assert CliRunner().invoke(app, ["verify", str(out / "model"), "--public-key",
                                    str(out / "demo-key.pub.pem")]).exit_code == 4
