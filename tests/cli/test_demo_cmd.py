"""``crowguard demo``, the README's main command: the gate on the embedded model, reported as it happened.

With CROW alone the demo's outcome flipped with the CPU's float rounding. The gate now sanitizes a
flagged model with guided sanitizing, which removed this backdoor (attack success 0.00, re-scan clean,
signed) on all 8 seeds of this recipe at 1 and 2 threads; the demo's seed 0 keeps accuracy under the
trigger within 0.03 of clean, well inside the gate's 0.1 (bench/gate_lora_lab.py, bench/RESULTS.md), so
the test asserts the pass: the demo model is flagged, sanitized, signed and verified, and the attack
success left is far below the policy's limit. It also asserts what every run must do: every stage ran
and the reports were written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app

REPORTS = ["report.cdx.json", "report.html", "report.json", "report.md", "report.sarif"]


@pytest.mark.slow
def test_demo_runs_the_whole_gate_and_its_output_matches_the_verdict(demo_lab_dir: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from crowguard.pipeline.demo import demo_model_folder

    monkeypatch.setenv("CROWGUARD_CACHE", str(tmp_path / "cache"))
    shutil.copytree(demo_lab_dir, demo_model_folder())  # the same spec, already built by the session fixture
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.stderr
    summary = " ".join(result.stderr.split())
    model, public_key = out / "model", out / "demo-key.pub.pem"
    report = json.loads((model / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    assert stages["behaviour-scan"]["findings"] and "backdoor flagged" in summary
    # the default policy sanitizes what the scan flags, guided by what it found, then checks the result
    assert stages["sanitize"]["metrics"]["method"] == "guided"
    assert {"eval-before", "eval-after", "behaviour-rescan", "utility", "attack-success"} <= set(stages)
    assert public_key.is_file() and set(REPORTS) <= {p.name for p in model.iterdir()}
    assert report["verdict"]["passed"], report["verdict"]  # measured to hold: see the docstring
    after = stages["eval-after"]["metrics"]
    assert after["asr"] <= 0.05 and after["triggered_accuracy"] >= 0.5  # triggered prompts answered again
    assert "PASS" in summary and "verified with" in summary and "sign" in stages
    assert (model / "model.sig").is_file() and any(model.glob("*.safetensors"))
    verified = CliRunner().invoke(app, ["verify", str(model), "--public-key", str(public_key)])
    assert verified.exit_code == 0, verified.stderr
    (model / "report.md").write_text("edited\n")
    assert CliRunner().invoke(app, ["verify", str(model), "--public-key", str(public_key)]).exit_code == 4
