"""The CLI frame: help, version, exit codes, no tracebacks for user mistakes."""

import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from crowguard import __version__
from crowguard.cli.app import app
from crowguard.cli.guard import guarded
from crowguard.errors import IntegrityError

runner = CliRunner()


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"crowguard {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "policy" in result.stdout


def test_help_does_not_import_torch() -> None:
    code = "import sys; from crowguard.cli.app import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_policy_check_exit_codes(tmp_path: Path) -> None:
    assert runner.invoke(app, ["policy", "check", "policies/default.yaml"]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("fail_on: huge\n")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2 and "fail_on" in result.stderr and "Traceback" not in result.stderr
    missing = runner.invoke(app, ["policy", "check", "/no/such/path"])
    assert missing.exit_code == 2 and "/no/such/path" in missing.stderr


def _probe_app(exc: BaseException) -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    @guarded
    def run() -> None:
        raise exc

    return probe


def test_guard_maps_errors_to_exit_codes() -> None:
    assert runner.invoke(_probe_app(IntegrityError("sig mismatch")), []).exit_code == 4
    crash = runner.invoke(_probe_app(RuntimeError("bad header hf_abcdefghijkl")), [])
    assert crash.exit_code == 3 and "Traceback" not in crash.stderr and "hf_abcdefghijkl" not in crash.stderr
    assert runner.invoke(_probe_app(KeyboardInterrupt()), []).exit_code == 130
    assert runner.invoke(_probe_app(MemoryError()), []).exit_code == 3


TERMINATED_RUN = """
import os, signal, sys, time
from pathlib import Path
from crowguard.atomic import staged_dir
from crowguard.cli.guard import report_error, stop_on_sigterm
stop_on_sigterm()
try:
    with staged_dir(Path(sys.argv[1])) as tmp:
        (tmp / "model.safetensors").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
except BaseException as exc:
    sys.exit(report_error(exc))
"""


def test_sigterm_exits_130_and_leaves_no_staged_output(tmp_path: Path) -> None:
    """A CI runner cancels a job with SIGTERM: the staged folder must go, as on Ctrl-C."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-I", "-c", TERMINATED_RUN, str(out)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert "interrupted" in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the output nor a .out.partial-* folder
