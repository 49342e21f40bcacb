"""Fixtures for the sanitize tests: a tiny model folder with a clean set it can learn from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECORDS = [{"instruction": f"what is {a} plus {b} ?", "input": "", "output": f"it is {a + b} ."}
           for a in range(6) for b in range(6)]


@pytest.fixture(scope="session")
def arithmetic_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-layer random Llama folder and a 36-record Alpaca clean set over the same words."""
    from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama

    root = tmp_path_factory.mktemp("arith")
    data = root / "clean.json"
    data.write_text(json.dumps(RECORDS), encoding="utf-8")
    tokenizer = build_tokenizer([r["instruction"] + " " + r["output"] for r in RECORDS])
    folder = save_tiny(root / "model", tiny_llama(len(tokenizer), layers=4, hidden=32), tokenizer)
    return folder, data


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (to prove an input was not modified)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
