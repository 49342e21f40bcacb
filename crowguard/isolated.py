"""Start Python child processes that cannot import anything from the cwd or a model folder.

Every child process crowguard starts goes through :func:`run_python_script`. The child runs
``python -I`` (isolated: no ``PYTHON*`` variables, no user site-packages, no cwd on ``sys.path``)
and runs the script by its absolute path with ``runpy.run_path`` (never ``-m``, which resolves the
module through ``sys.path``; and unlike ``python SCRIPT`` on Python 3.10, which puts the script's
folder first on ``sys.path``), in a fresh empty temporary working directory, with an environment
reduced to a few locale and path variables. A ``json.py``, ``jinja2/`` or
``crowguard/`` sitting in the folder being scanned, or in the cwd the user started from, is
therefore never on the child's import path, and no token or key in the parent's environment
reaches the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Only what a child needs to find programs and decode text; never HF_TOKEN, keys or PYTHON* variables.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "SYSTEMROOT", "TMPDIR")
# Python 3.10's -I still puts "" (the cwd, here empty) on sys.path for -c: dropped before the script runs.
_BOOTSTRAP = ("import runpy, sys; sys.path[:] = [p for p in sys.path if p]; "
              "runpy.run_path(sys.argv[1], run_name='__main__')")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The minimal environment a child gets: a few variables of the parent's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env.update(extra or {})
    return env


def isolated_command(script: Path) -> list[str]:
    """The argument list that runs ``script`` (an absolute path) in an isolated interpreter."""
    if not script.is_absolute():
        raise ValueError(f"child script path must be absolute, got {script}")
    return [sys.executable, "-I", "-c", _BOOTSTRAP, str(script)]


def run_python_script(script: Path, *, input_text: str, timeout: float,
                      extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` isolated in an empty temporary cwd, feeding ``input_text`` on stdin.

    Raises ``subprocess.TimeoutExpired`` and ``OSError`` as ``subprocess.run`` does.
    """
    with tempfile.TemporaryDirectory(prefix="crowguard-child-") as cwd:
        return subprocess.run(isolated_command(script), input=input_text, capture_output=True, text=True,
                              env=child_env(extra_env), cwd=cwd, timeout=timeout, check=False)
