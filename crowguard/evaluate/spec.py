"""What to evaluate: prompts, keywords, target and decoding settings, validated, from files or a lab card."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from crowguard.config_checks import FieldChecks
from crowguard.data import Record, get_task, load_records
from crowguard.data.lab_card import LabCard
from crowguard.errors import ConfigError, UsageError
from crowguard.models.prompts import TEMPLATES, Template

PROTOCOL = "backdoorllm"
"""Greedy decoding, 128 new tokens, raw instruction, case-insensitive keywords, empty outputs left out."""


@dataclass(frozen=True)
class EvalSpec:
    """An evaluation: triggered and clean prompts, the ASR keywords, and the decoding protocol.

    ``answers_known`` says that each record's ``output`` is the right answer (lab models), so that
    accuracy is measured; otherwise outputs are reference responses, used only for perplexity.
    """

    keywords: tuple[str, ...]
    triggered: tuple[Record, ...] = ()
    clean: tuple[Record, ...] = ()
    target: str | None = None
    answers_known: bool = False
    template: Template = "raw"
    max_new_tokens: int = 128
    batch_size: int = 16
    limit: int | None = None
    perplexity: bool = True
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.triggered and not self.clean:
            raise ConfigError("nothing to evaluate: no triggered and no clean prompts",
                              hint="give --triggered FILE and/or --clean FILE, or a lab model with lab.json")
        check = FieldChecks("eval spec", self)
        check.text("keywords", hint="give --task NAME or --keyword WORD")
        check.choice("template", TEMPLATES)
        check.at_least(1, "max_new_tokens", "batch_size")
        check.at_least(1, "limit", optional=True)

    def prompts(self, which: str) -> tuple[Record, ...]:
        """The ``triggered`` or ``clean`` records, cut to ``limit``."""
        records: tuple[Record, ...] = getattr(self, which)
        return records if self.limit is None else records[: self.limit]

    def settings(self) -> dict[str, JsonValue]:
        """The protocol settings, for the result."""
        return {"protocol": PROTOCOL, "decoding": "greedy", "template": self.template,
                "max_new_tokens": self.max_new_tokens, "keywords": list(self.keywords), "target": self.target,
                "answers_known": self.answers_known, "limit": self.limit, "sources": dict(self.sources)}


def spec_from_lab_card(card: LabCard, **overrides: Any) -> EvalSpec:
    """The evaluation a lab model's card describes: its held-out prompts, right answers and keywords."""
    base = EvalSpec(
        keywords=card.keywords,
        triggered=tuple(p.record() for p in card.triggered_test),
        clean=tuple(p.record() for p in card.clean_test),
        target=card.target,
        answers_known=True,
        sources={"triggered": "lab.json", "clean": "lab.json"},
    )
    return replace(base, **overrides) if overrides else base


def spec_from_files(*, triggered: Path | None, clean: Path | None, task: str | None = None,
                    keywords: tuple[str, ...] = (), target: str | None = None, **overrides: Any) -> EvalSpec:
    """An evaluation over Alpaca files, with a task preset's keywords and target, or custom keywords."""
    if task is not None:
        preset = get_task(task)
        keywords = keywords or preset.keywords
        target = target if target is not None else preset.target
    if not keywords:
        raise UsageError("no ASR keywords: give a task preset or keywords",
                         hint="pass --task negsentiment|refusal|codeinjection or --keyword WORD")
    sources = {name: str(path) for name, path in (("triggered", triggered), ("clean", clean)) if path is not None}
    return EvalSpec(
        keywords=tuple(keywords),
        triggered=tuple(load_records(triggered)) if triggered is not None else (),
        clean=tuple(load_records(clean)) if clean is not None else (),
        target=target,
        sources=sources,
        **overrides,
    )
