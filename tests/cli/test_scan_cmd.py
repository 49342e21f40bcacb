"""``crowguard scan``: exit codes by verdict, every report format, payloads caught end to end."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.scan.interface import ScannerError
from tests.scan import payloads

runner = CliRunner()


def _crowguard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crowguard", *args], capture_output=True, text=True, timeout=300)


def test_clean_model_passes_and_missing_path_is_usage_error(tiny_model_dir: Path) -> None:
    clean = _crowguard("scan", str(tiny_model_dir), "--no-behaviour")  # a random model: files only
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["verdict"]["passed"] is True and "PASS" in clean.stderr
    missing = _crowguard("scan", "/no/such/path")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines()[0] == "error: model folder /no/such/path does not exist"
    assert "Traceback" not in missing.stderr


@pytest.mark.parametrize(("name", "build", "rule"), [
    ("pytorch_model.bin", lambda p: p.write_bytes(payloads.system_pickle()), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.pkl", lambda p: p.write_bytes(pickle.dumps(payloads.ImportIndirection())), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.pt", payloads.torch_zip_with_payload, "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.safetensors", lambda p: p.write_bytes(payloads.system_pickle()), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("weights.txt", lambda p: p.write_bytes(payloads.system_pickle(protocol=0)), "CG-PICKLE-DANGEROUS-IMPORT"),
    ("model.ckpt", lambda p: p.write_bytes(payloads.truncated_pickle()), "CG-PICKLE-UNPARSEABLE"),
    ("dyn.pkl", lambda p: p.write_bytes(payloads.DYNAMIC_IMPORT), "CG-PICKLE-DYNAMIC-IMPORT"),
])
@pytest.mark.parametrize("policy", ["default", "permissive"])
def test_payload_exits_1_with_rule(tiny_model_dir: Path, tmp_path: Path, name: str, build, rule: str,
                                   policy: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    for source in tiny_model_dir.iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    build(folder / name)
    result = runner.invoke(app, ["scan", str(folder), "--policy", f"policies/{policy}.yaml", "-q"])
    assert result.exit_code == 1, result.stderr
    report = json.loads(result.stdout)  # nothing else (no library warning) on stdout
    assert any(f["rule_id"] == rule and f["file"] == name for f in report["stages"][0]["findings"])


def test_report_dir_writes_every_format(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    payloads.write(folder, "pytorch_model.bin", payloads.system_pickle())
    out = tmp_path / "reports"
    result = _crowguard("scan", str(folder), "--report-dir", str(out))
    assert result.returncode == 1 and result.stdout == ""
    assert sorted(p.name for p in out.iterdir()) == ["report.cdx.json", "report.html", "report.json", "report.md",
                                                       "report.sarif"]
    sarif = json.loads((out / "report.sarif").read_text())
    assert sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "pytorch_model.bin"
    assert "FAIL (exit 1)" in (out / "report.md").read_text()


def test_formats_and_report_file(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    payloads.write(folder, "model.safetensors", payloads.valid_safetensors())
    sarif = runner.invoke(app, ["scan", str(folder), "--format", "sarif", "-q"])
    assert sarif.exit_code == 0 and json.loads(sarif.stdout)["version"] == "2.1.0"
    page = tmp_path / "out" / "scan.html"
    html = runner.invoke(app, ["scan", str(folder), "--report", str(page)])
    assert html.exit_code == 0 and page.read_text().startswith("<!DOCTYPE html>") and html.stdout == ""
    bad = runner.invoke(app, ["scan", str(folder), "--format", "pdf"])
    assert bad.exit_code == 2 and "unknown report format 'pdf'" in bad.stderr


def test_scan_that_cannot_finish_exits_3_with_report(tmp_path: Path, monkeypatch) -> None:
    from crowguard.scan.files import templates

    def broken(*args, **kwargs):
        raise ScannerError("renderer unavailable")

    monkeypatch.setattr(templates.ChatTemplateScanner, "scan", broken)
    folder = tmp_path / "model"
    payloads.write(folder, "model.safetensors", payloads.valid_safetensors())
    result = runner.invoke(app, ["scan", str(folder)])
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["stages"][0]["status"] == "failed"
    assert report["stages"][0]["errors"] == ["chat-templates: renderer unavailable"]
