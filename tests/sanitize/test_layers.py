"""The sanitize stage stands alone: it imports no other stage and no CLI code."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "crowguard" / "sanitize"
FORBIDDEN = re.compile(r"^\s*(from|import)\s+crowguard\.(lab|scan|evaluate|pull|sign|cli|pipeline)\b", re.M)
TOP_LEVEL_HEAVY = re.compile(r"^(from|import)\s+(torch|transformers|peft|accelerate|bitsandbytes)\b", re.M)


def test_no_stage_or_cli_imports_and_heavy_imports_are_lazy() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert not FORBIDDEN.search(text), path.name
        assert not TOP_LEVEL_HEAVY.search(text), path.name
