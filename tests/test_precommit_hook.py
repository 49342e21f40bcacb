"""The pre-commit hook (``.pre-commit-hooks.yaml``), run by ``pre-commit try-repo`` on a throwaway repository.

The hook repository is a fresh git repository holding this checkout's hook file (``language: system``
needs nothing else, and no network); the repository under test holds a clean model folder and a folder
with a malicious pickle generated here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crowguard.cli.scan_files_cmd import model_folders
from tests.conftest import REPO
from tests.scan import payloads

pytest.importorskip("pre_commit", reason="pre-commit is not installed (pip install -e '.[test]')")
if shutil.which("git") is None:
    pytest.skip("git is not installed", allow_module_level=True)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main",
                    *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def hook_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "hooks"
    repo.mkdir()
    shutil.copy(REPO / ".pre-commit-hooks.yaml", repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "hooks")
    return repo


def _try_repo(hook_repo: Path, target: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "crowguard-scan"],
                          cwd=target, env=env, capture_output=True, text=True, timeout=300)


def test_hook_passes_a_clean_model_and_blocks_a_malicious_pickle(hook_repo: Path, tiny_model_dir: Path,
                                                                 tmp_path: Path) -> None:
    target = tmp_path / "project"
    shutil.copytree(tiny_model_dir, target / "models" / "clean")
    (target / "app.py").write_text("print('not a model')\n")  # code beside the models folder is not scanned
    _git(target, "init", "-q")
    _git(target, "add", ".")
    clean = _try_repo(hook_repo, target, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "crowguard file scan" in clean.stdout and "Passed" in clean.stdout

    payloads.write(target / "models" / "bad", "pytorch_model.bin", payloads.system_pickle())
    _git(target, "add", ".")
    bad = _try_repo(hook_repo, target, tmp_path)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout and "CG-PICKLE-DANGEROUS-IMPORT" in bad.stdout
    assert "models/bad" in bad.stdout and "FAIL" in bad.stdout


def test_each_folder_is_scanned_once_outermost_first() -> None:
    files = [Path("m/a/model.safetensors"), Path("m/a/sub/x.bin"), Path("m/b/y.pt"), Path("m/a/config.json")]
    assert model_folders(files) == [Path("m/a"), Path("m/b")]
    assert model_folders([Path("model.bin"), Path("m/x.bin")]) == [Path(".")]
