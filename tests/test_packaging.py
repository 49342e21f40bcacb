"""What an installed wheel needs: every data file in package-data, the policies inside the package.

The wheel itself is built, installed into a fresh venv and run by ``scripts/wheel_smoke.sh`` (CI).
"""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import pytest

from crowguard.policy import SHIPPED_POLICIES, builtin_policy, load_policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "crowguard"


def _package_data() -> list[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["package-data"]["crowguard"]


def test_every_data_file_in_the_package_is_in_package_data() -> None:
    patterns = _package_data()
    data = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data, "no data files found: the test looks in the wrong place"
    # setuptools' "**/" also matches files at the package root.
    missing = [f for f in data if not any(fnmatch.fnmatch(f, pat) or fnmatch.fnmatch(f, pat.removeprefix("**/"))
                                          for pat in patterns)]
    assert not missing, f"add patterns to [tool.setuptools.package-data] in pyproject.toml for: {missing}"


@pytest.mark.parametrize("name", SHIPPED_POLICIES)
def test_shipped_policies_live_in_the_package_and_load_by_name(name: str) -> None:
    path = builtin_policy(name)
    assert PACKAGE in path.parents, path
    assert load_policy(name).name == name


@pytest.mark.parametrize("name", SHIPPED_POLICIES)
def test_the_top_level_policies_folder_is_an_identical_copy(name: str) -> None:
    copy = REPO / "policies" / f"{name}.yaml"
    assert copy.read_bytes() == builtin_policy(name).read_bytes(), (
        f"{copy} differs from crowguard/policies/{name}.yaml, which is what crowguard uses: both are generated "
        f"from crowguard/policy.py (python -m crowguard.policy_docs --write)")
    shipped = {p.name for p in (PACKAGE / "policies").glob("*.yaml")}
    assert shipped == {p.name for p in (REPO / "policies").glob("*.yaml")} == {f"{n}.yaml" for n in SHIPPED_POLICIES}


def test_a_shipped_name_is_never_a_file_in_the_working_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "default").write_text("name: planted\nfail_on: critical\n")
    monkeypatch.chdir(tmp_path)
    assert load_policy("default").fail_on.value == "high"
    assert load_policy("./default").name == "planted"  # a path is still a path
