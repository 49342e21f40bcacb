"""Which evaluation a command runs (from test files the user gave, else, on request, a lab card), and
running it as a report stage with its typed result beside it.

A model folder's ``lab.json`` is attacker-controlled like every other file in it: it supplies test
prompts, keywords and a defence set only when the user asks for it (``--lab-card``, or the demo and
lab tooling, which build the lab model themselves). Otherwise it is an ordinary file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowguard.data.lab_card import LAB_CARD, LabCard, read_lab_card
from crowguard.errors import UsageError
from crowguard.evaluate import EvalResult, EvalSpec, evaluate, spec_from_files, spec_from_lab_card
from crowguard.progress import ProgressSink
from crowguard.report.model import StageName, StageResult
from crowguard.runtime import Runtime


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: its report stage and the typed result the gate's checks read."""

    stage: StageResult
    result: EvalResult


def evaluation_stage(name: StageName, folder: Path, spec: EvalSpec, *, runtime: Runtime, progress: ProgressSink,
                     shown_as: Path | None = None) -> Evaluation:
    """Evaluate ``folder`` as the report stage ``name``; counted progress goes to ``progress``."""
    started = time.monotonic()
    result = evaluate(folder, spec, progress=progress.count, device=runtime.device, dtype=runtime.dtype)
    metrics = result.to_dict()
    if shown_as is not None:
        metrics["model"] = str(shown_as.absolute())
    return Evaluation(StageResult(name=name, metrics=metrics, seconds=round(time.monotonic() - started, 3)), result)


def requested_lab_card(model: Path, use_lab_card: bool) -> LabCard | None:
    """The folder's lab card when the user asked for it (a UsageError if it has none); else None, unread."""
    if not use_lab_card:
        return None
    card = read_lab_card(model) if model.is_dir() else None
    if card is None:
        raise UsageError(f"--lab-card given, but {model} has no {LAB_CARD}",
                         hint="drop --lab-card, or point at a lab model built by crowguard lab build")
    return card


def evaluation_spec(model: Path, *, triggered: Path | None = None, clean_test: Path | None = None,
                    task: str | None = None, keywords: tuple[str, ...] = (), limit: int | None = None,
                    template: str = "raw", max_new_tokens: int = 128, use_lab_card: bool = False) -> EvalSpec | None:
    """The before/after evaluation for ``model``, or None when there is nothing to evaluate on."""
    options: dict[str, Any] = {"template": template, "max_new_tokens": max_new_tokens, "limit": limit}
    card = requested_lab_card(model, use_lab_card)
    if triggered is None and clean_test is None:
        if task is not None or keywords:
            raise UsageError("--task/--keyword need test prompts", hint="add --triggered FILE and/or --clean-test FILE")
        return None if card is None else spec_from_lab_card(card, **options)
    target = None
    if card is not None and task is None and not keywords:
        keywords, target = card.keywords, card.target
    return spec_from_files(triggered=triggered, clean=clean_test, task=task, keywords=keywords, target=target,
                           **options)
