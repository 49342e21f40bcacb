"""Probes as token ids, with room to insert a candidate trigger at the start, a random place, or the end.

Insertion happens in token space, between the instruction's words, so a candidate found as token ids
(by the search) and one given as text (the library) are inserted the same way, and the null
distribution inserts random tokens at exactly the same places. The random place of each probe is
drawn once per scan (seeded) and shared by every candidate and every null sample.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.models.prompts import format_prompt
from crowguard.scan.behaviour.options import POSITION_MODES
from crowguard.scan.behaviour.probes import Probe

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_MARK = "CROWGUARDPROBEMARK"


@dataclass(frozen=True)
class EncodedProbe:
    """A probe's token ids: template and text before the instruction, its words, and what follows."""

    prefix: tuple[int, ...]
    words: tuple[tuple[int, ...], ...]
    suffix: tuple[int, ...]

    def ids(self, insert: Sequence[int] = (), at: int = 0) -> list[int]:
        """The whole prompt, with ``insert`` placed before word ``at`` (``len(words)``: after the last)."""
        if not 0 <= at <= len(self.words):
            raise ValueError(f"insertion point {at} outside 0..{len(self.words)}")
        body = [i for w in self.words[:at] for i in w] + list(insert) + [i for w in self.words[at:] for i in w]
        return [*self.prefix, *body, *self.suffix]


@dataclass(frozen=True)
class ProbeSet:
    """Encoded probes and each one's fixed random insertion point."""

    probes: tuple[Probe, ...]
    encoded: tuple[EncodedProbe, ...]
    random_at: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.encoded)

    def insertion_point(self, index: int, mode: str) -> int:
        """Where a candidate goes in probe ``index`` for position ``mode`` (start, random, end)."""
        if mode == "start":
            return 0
        if mode == "end":
            return len(self.encoded[index].words)
        if mode == "random":
            return self.random_at[index]
        raise ValueError(f"unknown position mode {mode!r}; expected one of {', '.join(POSITION_MODES)}")

    def sequences(self, insert: Sequence[int], mode: str) -> list[list[int]]:
        """Every probe with ``insert`` placed at ``mode``; an empty insert gives the plain probes."""
        return [p.ids(insert, self.insertion_point(i, mode)) for i, p in enumerate(self.encoded)]

    def split(self, index: int, mode: str) -> tuple[list[int], list[int]]:
        """Probe ``index`` cut where ``mode`` inserts: the ids before and the ids after."""
        encoded = self.encoded[index]
        at = self.insertion_point(index, mode)
        ids = encoded.ids((), at)
        begin = len(encoded.prefix) + sum(len(w) for w in encoded.words[:at])
        return ids[:begin], ids[begin:]

    def plain(self) -> list[list[int]]:
        """Every probe as it is."""
        return [p.ids() for p in self.encoded]


def encode_probes(tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe], template: str,
                  seed: int) -> ProbeSet:
    """Tokenize probes in ``template`` (raw, chat or alpaca), words kept apart for insertion."""
    rng = random.Random(seed)
    encoded = [_encode_one(tokenizer, p, template) for p in probes]
    random_at = tuple(rng.randint(1, len(e.words) - 1) if len(e.words) > 1 else len(e.words) for e in encoded)
    return ProbeSet(probes=tuple(probes), encoded=tuple(encoded), random_at=random_at)


def encode_candidate(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[int, ...]:
    """The token ids of ``text`` as it reads after a space in the middle of a sentence."""
    lead = "a "
    enc = tokenizer(lead + text, add_special_tokens=False, return_offsets_mapping=True)
    return tuple(i for i, (_, end) in zip(enc["input_ids"], enc["offset_mapping"]) if end > len(lead))


def _encode_one(tokenizer: PreTrainedTokenizerBase, probe: Probe, template: str) -> EncodedProbe:
    text = format_prompt(tokenizer, _MARK, probe.input, template)  # type: ignore[arg-type]
    before, found, after = text.partition(_MARK)
    if not found:
        raise ValueError("the prompt template dropped the instruction")
    special = template != "chat"  # a chat template writes its own special tokens into the text
    prefix = tokenizer(before, add_special_tokens=special)["input_ids"] if before or special else []
    suffix = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    return EncodedProbe(prefix=tuple(prefix), words=_word_groups(tokenizer, probe.instruction), suffix=tuple(suffix))


def _word_groups(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[tuple[int, ...], ...]:
    """The tokens of ``text`` grouped by the whitespace-separated word they belong to."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    groups: list[list[int]] = []
    for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
        starts_word = not groups or (start > 0 and text[start - 1].isspace()) or (end > start and text[start].isspace())
        if starts_word:
            groups.append([token])
        else:
            groups[-1].append(token)
    return tuple(tuple(g) for g in groups)
