"""Child processes start isolated: no cwd or script folder on sys.path, an empty cwd, a minimal environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crowguard.isolated import child_env, isolated_command, run_python_script

PROBE = """
import json, os, sys
print(json.dumps({"path": sys.path, "cwd": os.getcwd(), "listing": os.listdir("."), "env": dict(os.environ),
                  "flags": [sys.flags.isolated, sys.flags.ignore_environment, sys.flags.no_user_site]}))
"""


def test_child_sees_no_cwd_no_script_folder_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "scripts" / "probe.py"
    script.parent.mkdir()
    script.write_text(PROBE)
    (script.parent / "json.py").write_text("raise SystemExit('the script folder was imported from')\n")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "json.py").write_text("raise SystemExit('the cwd was imported from')\n")
    monkeypatch.chdir(hostile)
    for name, value in {"HF_TOKEN": "hf_secret", "PYTHONPATH": str(hostile), "PYTHONSTARTUP": str(hostile / "x.py"),
                        "PYTHONHOME": "/nonexistent", "AWS_SECRET_ACCESS_KEY": "k"}.items():
        monkeypatch.setenv(name, value)
    done = run_python_script(script, input_text="", timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["flags"] == [1, 1, 1]
    assert "" not in seen["path"] and str(hostile) not in seen["path"] and str(script.parent) not in seen["path"]
    assert seen["cwd"] != str(hostile) and seen["listing"] == []  # a fresh, empty working directory
    assert not Path(seen["cwd"]).exists()  # removed afterwards
    assert set(seen["env"]) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT", "TMPDIR"}


def test_env_is_an_allow_list_and_the_script_path_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("PATH", os.environ.get("PATH", "/usr/bin"))
    env = child_env({"OMP_NUM_THREADS": "1"})
    assert "HF_TOKEN" not in env and env["OMP_NUM_THREADS"] == "1" and "PATH" in env
    command = isolated_command(Path("/abs/x.py"))
    assert command[1:3] == ["-I", "-c"] and command[-1] == "/abs/x.py" and "-m" not in command
    with pytest.raises(ValueError, match="absolute"):
        isolated_command(Path("x.py"))
