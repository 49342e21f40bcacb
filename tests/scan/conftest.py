"""Helpers for file-scan tests: run the stage on a folder under a named or inline policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crowguard.policy import Policy, builtin_policy, load_policy
from crowguard.report.model import StageResult
from crowguard.scan.files.stage import SCANNERS, run_file_scan
from crowguard.scan.files.weights_present import WeightsPresentScanner

# The per-file scanners; the folder-level "no weights" check has its own tests (test_weights_present.py).
FILE_SCANNERS = tuple(s for s in SCANNERS if not isinstance(s, WeightsPresentScanner))


def policy(name: str = "default", **changes: Any) -> Policy:
    """A shipped policy, optionally with fields changed."""
    base = load_policy(builtin_policy(name))
    return base.model_copy(update=changes) if changes else base


@pytest.fixture
def scan() -> Callable[..., StageResult]:
    """``scan(folder, policy_name="default", **changes)`` -> the file-scan StageResult of the per-file scanners."""

    def run(folder: Path, policy_name: str = "default", **changes: Any) -> StageResult:
        return run_file_scan(folder, policy(policy_name, **changes), FILE_SCANNERS).stage

    return run


def rules(stage: StageResult, file: str | None = None) -> set[str]:
    """Rule ids found (in one file, when given)."""
    return {f.rule_id for f in stage.findings if file is None or f.file == file}
