"""requirements/cpu.lock agrees with pyproject.toml: every dependency pinned, with hashes, inside its range.

Regenerate the lock with ``./scripts/lock.sh`` when this fails after a dependency change.
"""

from __future__ import annotations

import re
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

if sys.version_info < (3, 11):
    pytest.skip("tomllib needs Python 3.11 (the lock is for 3.11)", allow_module_level=True)
import tomllib

LOCK = REPO / "requirements" / "cpu.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _lock() -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of sha256 hashes) for each entry of the lock."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in LOCK.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            assert current not in pins, f"{current} pinned twice in {LOCK.name}"
            pins[current] = (Version(match.group(2)), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line.strip()), line
            pins[current] = (version, hashes + 1)
        elif line and not line.startswith(" ") and not line.startswith("#"):
            raise AssertionError(f"unexpected line in {LOCK.name}: {line!r}")
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(text) for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]]


def test_every_dependency_is_pinned_inside_its_range_with_hashes() -> None:
    pins = _lock()
    assert all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]
    for requirement in _declared():
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "test"}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is in pyproject.toml but not in {LOCK.name}: run ./scripts/lock.sh"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{LOCK.name} pins {name}=={version}, outside pyproject.toml's {requirement}: run ./scripts/lock.sh"


def test_the_lock_holds_the_cpu_torch_that_the_action_and_set_up_pin() -> None:
    torch = _lock()["torch"][0]
    assert torch.local == "cpu", f"the lock's torch is {torch}, not a CPU build"
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert f"torch=={torch.public} " in action["inputs"]["torch"]["default"] + " "
    assert f"torch=={torch}" in (REPO / "requirements" / "cpu.in").read_text()
