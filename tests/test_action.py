"""The GitHub Action (``action.yml``), run step by step by ``tests/action_runner.py`` as a runner would.

The ``uses:`` steps (setup-python, cache, upload-sarif) cannot run offline and are recorded as skipped;
the install step is skipped in favour of this virtualenv (a cache hit). Everything else is the
action's own bash: the key written owner-only, the gate, its outputs, the job summary.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.action_runner import run_action
from tests.scan import payloads

FILES_ONLY_POLICY = "name: ci-files-only\nbehaviour_scan:\n  enabled: false\n"


@pytest.fixture
def workspace(tmp_path: Path, tiny_model_dir: Path) -> Path:
    ws = tmp_path / "workspace"
    shutil.copytree(tiny_model_dir, ws / "model")
    (ws / "files-only.yaml").write_text(FILES_ONLY_POLICY)
    subprocess.run([sys.executable, "-m", "crowguard", "keygen", "--out", str(tmp_path / "ci")], check=True,
                   capture_output=True)
    return ws


def _key(workspace: Path) -> str:
    return (workspace.parent / "ci.priv.pem").read_text()


def test_a_clean_model_passes_signed_with_summary_outputs_and_sarif(workspace: Path) -> None:
    key = _key(workspace)
    run = run_action({"model": "model", "policy": "files-only.yaml", "key": key, "out": "gated"},
                     workspace=workspace, reuse_venv=True)
    assert run.exit_code == 0, run.log
    statuses = {s.name: s.status for s in run.steps}
    assert statuses["Set up Python"] == "skipped (uses: actions/setup-python@v5)"
    assert statuses["Restore the cached environment"] == "skipped (uses: actions/cache@v4)"
    assert statuses["Install crowguard from the lock"] == "skipped (reuse venv)"
    assert statuses["Upload the SARIF report"] == "skipped (uses: github/codeql-action/upload-sarif@v3)"
    gate = next(s for s in run.steps if s.name == "Run crowguard gate")
    assert "exit-code=0" in gate.github_output and "verdict=pass" in gate.github_output
    assert run.outputs["exit-code"] == "0" and run.outputs["verdict"] == "pass"
    assert (workspace / run.outputs["sarif"]).is_file() and (workspace / run.outputs["report"]).is_file()
    assert (workspace / "gated" / "model.sig").is_file()
    assert run.summary == (workspace / "gated" / "report.md").read_text() and "PASS" in run.summary.upper()
    body = "".join(line for line in key.splitlines() if "PRIVATE KEY" not in line)
    assert body[:40] not in run.log  # the key is never printed
    assert not list(run.runner_temp.glob("crowguard-key.*"))  # and its file is gone


def test_a_malicious_pickle_fails_the_step_with_exit_1(workspace: Path) -> None:
    payloads.write(workspace / "model", "pytorch_model.bin", payloads.system_pickle())
    run = run_action({"model": "model", "key": _key(workspace), "out": "gated",
                      "extra-args": "--policy files-only.yaml --quiet"}, workspace=workspace, reuse_venv=True)
    assert run.exit_code == 1, run.log
    assert run.outputs["exit-code"] == "1" and run.outputs["verdict"] == "fail"
    assert "CG-PICKLE-DANGEROUS-IMPORT" in run.summary  # the summary step ran after the failure
    assert Path(workspace / run.outputs["sarif"]).is_file()
    assert not (workspace / "gated" / "model.sig").exists()


def test_a_usage_error_is_exit_2_with_a_summary_line(workspace: Path) -> None:
    run = run_action({"model": "model", "policy": "files-only.yaml", "out": "gated",
                      "extra-args": "--clean-test 'unbalanced"}, workspace=workspace, reuse_venv=True)
    assert run.exit_code == 2 and run.outputs["verdict"] == "error", run.log
    assert "extra-args cannot be split: No closing quotation" in run.log and "Traceback" not in run.log
    assert "without writing a report" in run.summary
    statuses = {s.name: s.status for s in run.steps}
    assert statuses["Upload the SARIF report"] == "skipped (if)"  # no SARIF to upload
