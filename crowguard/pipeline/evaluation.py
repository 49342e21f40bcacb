"""Which evaluation a command runs: from test files the user gave, else a lab model's lab.json, else none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crowguard.data.lab_card import read_lab_card
from crowguard.errors import UsageError
from crowguard.evaluate import EvalSpec, spec_from_files, spec_from_lab_card


def evaluation_spec(model: Path, *, triggered: Path | None = None, clean_test: Path | None = None,
                    task: str | None = None, keywords: tuple[str, ...] = (), limit: int | None = None,
                    template: str = "raw", max_new_tokens: int = 128) -> EvalSpec | None:
    """The before/after evaluation for ``model``, or None when there is nothing to evaluate on."""
    options: dict[str, Any] = {"template": template, "max_new_tokens": max_new_tokens, "limit": limit}
    card = read_lab_card(model) if model.is_dir() else None
    if triggered is None and clean_test is None:
        if task is not None or keywords:
            raise UsageError("--task/--keyword need test prompts", hint="add --triggered FILE and/or --clean-test FILE")
        return None if card is None else spec_from_lab_card(card, **options)
    target = None
    if card is not None and task is None and not keywords:
        keywords, target = card.keywords, card.target
    return spec_from_files(triggered=triggered, clean=clean_test, task=task, keywords=keywords, target=target,
                           **options)
