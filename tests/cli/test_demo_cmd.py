"""``crowguard demo``, the README's main command: the gate on the embedded model, reported as it happened.

Whether CROW removes the demo model's backdoor depends on the CPU's float rounding (it did on the AVX2
machines the demo was made on, and did not on an AVX-512 one: bench/RESULTS.md), so the test asserts
what every run must do: every stage ran, the reports were written, the demo exits 0 having run to the
end, and the output agrees with the verdict (signed and verified on a pass, nothing signed on a fail).
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
    assert result.exit_code == 0, result.stderr  # it ran to the end, whatever the gate decided
    summary = " ".join(result.stderr.split())
    model, public_key = out / "model", out / "demo-key.pub.pem"
    report = json.loads((model / "report.json").read_text())
    stages = {s["name"]: s for s in report["stages"]}
    flagged = bool(stages["behaviour-scan"]["findings"])
    assert ("backdoor flagged" if flagged else "nothing flagged") in summary
    if flagged:  # the default policy sanitizes what the scan flags, then checks the result
        assert stages["sanitize"]["metrics"]["method"] == "guided"  # the scan flagged: its candidates guide CROW
        assert {"eval-before", "eval-after", "behaviour-rescan", "utility", "attack-success"} <= set(stages)
    else:
        assert "sanitize" not in stages and {"eval", "attack-success"} <= set(stages)
    assert public_key.is_file() and set(REPORTS) <= {p.name for p in model.iterdir()}

    if report["verdict"]["passed"]:
        assert "PASS" in summary and "verified with" in summary and "sign" in stages
        assert (model / "model.sig").is_file() and any(model.glob("*.safetensors"))
        verified = CliRunner().invoke(app, ["verify", str(model), "--public-key", str(public_key)])
        assert verified.exit_code == 0, verified.stderr
        (model / "report.md").write_text("edited\n")
        assert CliRunner().invoke(app, ["verify", str(model), "--public-key", str(public_key)]).exit_code == 4
    else:
        assert report["verdict"]["exit_code"] == 1 and "FAIL" in summary and "nothing signed" in summary
        assert "sign" not in stages and sorted(p.name for p in model.iterdir()) == REPORTS
