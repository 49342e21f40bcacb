"""Reports always get written: names that are not UTF-8 appear escaped in every format, and
``--report -`` means stdout (no file named ``-``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app

runner = CliRunner()
ESCAPED = "\\xff\\xfe.txt"


def _with_undecodable_name(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    with open(os.path.join(os.fsencode(folder), b"\xff\xfe.txt"), "wb") as handle:
        handle.write(b"hello")
    return folder


def test_undecodable_name_reaches_every_report_format_escaped(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _with_undecodable_name(tiny_model_dir, tmp_path)
    out = tmp_path / "reports"
    result = runner.invoke(app, ["scan", str(folder), "--no-behaviour", "--report-dir", str(out),
                                 "--policy", "policies/strict.yaml"])
    assert result.exit_code == 1, result.stderr  # strict fails on the medium CG-PATH-ODD-NAME; no crash (3)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    odd = [f for f in report["stages"][0]["findings"] if f["rule_id"] == "CG-PATH-ODD-NAME"]
    assert [f["file"] for f in odd] == [ESCAPED]
    assert ESCAPED in {f["path"] for f in report["source"]["files"]}
    for suffix in (".md", ".html", ".sarif"):
        text = (out / f"report{suffix}").read_text(encoding="utf-8")  # valid UTF-8, name shown escaped
        assert "xff" in text and "\udcff" not in text


def test_undecodable_name_in_a_pull_record(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _with_undecodable_name(tiny_model_dir, tmp_path)
    record = tmp_path / "pull.json"
    pulled = runner.invoke(app, ["pull", str(folder), "--out", str(tmp_path / "pulled"), "--report", str(record)])
    assert pulled.exit_code == 0, pulled.stderr
    assert ESCAPED in {s["path"] for s in json.loads(record.read_text())["stages"][0]["skipped"]}


@pytest.mark.parametrize("command", ["scan", "pull"])
def test_report_dash_is_stdout(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               command: str) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["scan", str(tiny_model_dir), "--no-behaviour", "-q", "--report", "-"] if command == "scan" else \
        ["pull", str(tiny_model_dir), "--out", str(tmp_path / "pulled"), "--report", "-"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["command"] == command
    assert not (tmp_path / "-").exists()
