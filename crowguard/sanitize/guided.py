"""Scan-guided sanitizing: the behavioural scan's trigger candidates, inserted into the clean prompts.

CROW trains blind: it makes the layers consistent under a random (FGSM) perturbation of the clean
prompts' embeddings, hoping the trigger's shortcut goes with it. The scan already knows what steers
the model. ``method='guided'`` trains with the very same CROW objective (``crow_loss``, unchanged)
over the clean prompts *and* their twins with a candidate inserted, each twin paired with the clean
answer: the model learns that the insertion changes nothing, and the consistency term holds its
layers steady on the triggered prompts, where the backdoor's shortcut lives.

Each clean record gets one twin: candidate ``i % n``, on its own turns alternately at the place the
scan found it strongest and at another place (start, a random word boundary, end), so the twins do
not teach "a trigger at the start is harmless" only. Insertion is in text, between
words, as the scan inserted it between words in token space.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crowguard.data.alpaca import Record
from crowguard.errors import ConfigError

POSITIONS = ("start", "random", "end")
MAX_GUIDES = 8


@dataclass(frozen=True)
class Guide:
    """A trigger candidate to unlearn: its text and where it is strongest (None: anywhere)."""

    text: str
    mode: str | None = None
    source: str = "scan"

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ConfigError("a trigger candidate to unlearn is empty", hint="give each candidate as non-empty text")
        if self.mode is not None and self.mode not in POSITIONS:
            raise ConfigError(f"trigger candidate {self.text!r}: unknown position {self.mode!r}",
                              hint=f"use one of {', '.join(POSITIONS)}, or leave it out")


def insert_at(instruction: str, text: str, mode: str, rng: random.Random) -> str:
    """``instruction`` with ``text`` placed before its first word, between two words, or after the last."""
    words = instruction.split(" ")
    if mode == "start":
        at = 0
    elif mode == "end":
        at = len(words)
    else:
        at = rng.randint(1, len(words) - 1) if len(words) > 1 else len(words)
    return " ".join([*words[:at], text.strip(), *words[at:]])


def guided_twins(records: Sequence[Record], guides: Sequence[Guide], seed: int) -> tuple[Record, ...]:
    """One twin per clean record: a candidate inserted into its instruction, the clean answer kept."""
    if not guides:
        return ()
    rng = random.Random(seed)
    twins = []
    for i, record in enumerate(records):
        guide, turn = guides[i % len(guides)], i // len(guides)  # each guide's own turns alternate places
        strongest = guide.mode or POSITIONS[turn % len(POSITIONS)]
        mode = strongest if turn % 2 == 0 else rng.choice([p for p in POSITIONS if p != strongest])
        twins.append(Record(insert_at(record.instruction, guide.text, mode, rng), record.input, record.output))
    return tuple(twins)


def merge_guides(*groups: Sequence[Guide]) -> tuple[Guide, ...]:
    """The guides of every group, first seen first, one per text, at most ``MAX_GUIDES``."""
    seen: dict[str, Guide] = {}
    for group in groups:
        for guide in group:
            seen.setdefault(guide.text.strip(), guide)
    return tuple(seen.values())[:MAX_GUIDES]


def load_guides(path: str | Path) -> tuple[Guide, ...]:
    """``--candidates FILE``: a JSON list of strings or of {"text", "position"} objects, or one per line."""
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the candidates file {file}: {exc}",
                          hint="give a UTF-8 text or JSON file of trigger candidates") from None
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        items = [line for line in raw.splitlines() if line.strip()]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{file} holds no trigger candidates",
                          hint='give a JSON list such as ["cf", {"text": "BadMagic", "position": "start"}]')
    guides = []
    for item in items:
        if isinstance(item, str):
            guides.append(Guide(item, source="given"))
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            guides.append(Guide(item["text"], item.get("position"), source="given"))
        else:
            raise ConfigError(f"{file}: {item!r} is not a trigger candidate",
                              hint='each entry is a string or {"text": ..., "position": start|random|end}')
    return merge_guides(guides)
