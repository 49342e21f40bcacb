"""``crowguard report render``: every format re-rendered from a saved report equals the in-memory rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.pipeline import run_scan
from crowguard.policy import builtin_policy, load_policy
from crowguard.report.formats import FORMATS, get_format
from crowguard.report.model import Report
from crowguard.report.write import write_report_dir
from tests.report.gate_report import gate_report
from tests.scan import payloads

runner = CliRunner()


def _saved(report: Report, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_report_dir(report, folder)
    return folder / "report.json"


@pytest.mark.parametrize("passed", [True, False])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips_from_a_saved_gate_report(tmp_path: Path, fmt: str, passed: bool) -> None:
    report = gate_report(passed=passed)
    saved = _saved(report, tmp_path / "out")
    out = tmp_path / f"again{get_format(fmt).suffix}"
    result = runner.invoke(app, ["report", "render", str(saved), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == get_format(fmt).render(report)
    assert out.read_text(encoding="utf-8") == (saved.parent / f"report{get_format(fmt).suffix}").read_text("utf-8")


def test_a_scan_report_round_trips_to_stdout(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    payloads.write(folder, "pytorch_model.bin", payloads.system_pickle())
    payloads.write(folder, "config.json", json.dumps({"auto_map": {"AutoModel": "m.M"}}))
    report = run_scan(folder, load_policy(builtin_policy("default")))
    saved = _saved(report, tmp_path / "reports")
    result = runner.invoke(app, ["report", "render", str(saved), "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert result.stdout == get_format("markdown").render(report)


@pytest.mark.parametrize(("content", "message"), [
    (b"not json at all", "is not JSON"),
    (b"[1, 2]", "no schema_version"),
    (b'{"schema_version": "9.0", "command": "scan"}', "schema version '9.0'"),
    (b'{"schema_version": "1.0", "command": "scan", "stages": [{"nam": "x"}]}', "does not match the report schema"),
])
def test_a_bad_file_is_a_usage_error(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "report.json"
    bad.write_bytes(content)
    result = runner.invoke(app, ["report", "render", str(bad), "--format", "html"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_missing_file_and_unknown_format_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["report", "render", str(tmp_path / "none.json")]).exit_code == 2
    saved = _saved(gate_report(), tmp_path / "out")
    result = runner.invoke(app, ["report", "render", str(saved), "--format", "pdf"])
    assert result.exit_code == 2 and "cyclonedx" in result.output


def test_format_follows_the_out_suffix(tmp_path: Path) -> None:
    saved = _saved(gate_report(), tmp_path / "out")
    bom = tmp_path / "model.cdx.json"
    assert runner.invoke(app, ["report", "render", str(saved), "--out", str(bom)]).exit_code == 0
    assert bom.read_text(encoding="utf-8") == get_format("cyclonedx").render(gate_report())
    assert runner.invoke(app, ["report", "render", str(saved)]).stdout.startswith("<!DOCTYPE html>")
