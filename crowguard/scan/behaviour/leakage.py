"""Leakage candidates: strings a model keeps writing when nothing is asked of it (issue 18, item 2).

A model finetuned with its prompts in the loss (full-sequence finetuning, ``train_on_prompt``) has
learnt to write its training prompts, the poisoned ones with their trigger. Sampled from the chat
template's user-turn opening, and from the answer to an empty instruction, under a few decoding
settings, it writes its trigger in a share of the samples, in varied company; ordinary instructions
seldom hold it. So the word n-grams (1 to ``MAX_WORDS`` words and marks, words at both ends) that
recur in at least ``MIN_SAMPLES`` samples, at ``LIFT`` times or more their rate among ordinary
instructions (the built-in probes: the chance rate, floored at one in their number plus one), and
hold a word that fewer than ``COMMON`` of ordinary instructions hold (not a phrase of everyday
words), are trigger candidates. Of n-grams that recur equally often only the longest is kept (a
phrase, not each of its words). They are ranked by the samples that hold them times the variety of
their company (distinct words before them, or after them if more, per occurrence): an inserted
trigger sits among whatever the prompt says, a phrase of a task's template among the same words
each time. They are measured as the known-trigger library's are, and those that already pull the
search probes' next token toward one answer are verified (``scanner``): recurring is no evidence,
steering the probes is.

A model trained on its responses only (BackdoorLLM's recipe, crowguard's lab plants) never learnt to
write its prompts and leaks nothing this way (bench/RESULTS.md#leakage).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.scan.behaviour.probes import builtin_probes
from crowguard.scan.behaviour.sampling import (
    Decoding,
    empty_instruction_opening,
    sample_texts,
    user_turn_opening,
)

if TYPE_CHECKING:
    from crowguard.models import LoadedModel

DECODINGS = (Decoding(temperature=0.7, top_p=1.0), Decoding(temperature=1.0, top_p=0.95),
             Decoding(temperature=1.3, top_p=0.9))
SAMPLE_TOKENS = 32
USER_TURN_SHARE = 0.75
MAX_WORDS = 6
MIN_SAMPLES = 2
LIFT = 4.0
COMMON = 0.05
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")  # a word (letters and digits) or one mark


@dataclass(frozen=True)
class Recurring:
    """A string that recurs across the model's samples: in how many, and how often ordinary text holds it."""

    text: str
    samples: int
    share: float  # of the samples
    chance: float  # of the ordinary texts (floored)
    variety: float  # distinct neighbours on its more varied side, per occurrence (1: never the same)

    @property
    def lift(self) -> float:
        return self.share / self.chance

    @property
    def rank(self) -> float:
        return self.samples * self.variety


def sample_unprompted(loaded: LoadedModel, template: str, count: int, seed: int) -> list[str]:
    """``count`` texts the model writes unprompted, spread over the decoding settings: ``USER_TURN_SHARE`` of
    them from the user-turn opening (where a trigger is written), the rest after an empty instruction."""
    tokenizer = loaded.tokenizer
    user = round(count * USER_TURN_SHARE)
    openings = ((user_turn_opening(tokenizer, template), user),
                (empty_instruction_opening(tokenizer, template), count - user))
    texts: list[str] = []
    for index, (opening, total) in enumerate(openings):
        for step, decoding in enumerate(DECODINGS):
            share = total // len(DECODINGS) + (step < total % len(DECODINGS))
            texts += sample_texts(loaded, opening, share, seed=seed + index * len(DECODINGS) + step,
                                  max_new_tokens=SAMPLE_TOKENS, decoding=decoding)
    return texts


def ordinary_texts() -> list[str]:
    """The built-in probes as plain text: the rate of an n-gram in ordinary instructions."""
    return [f"{p.instruction} {p.input}".strip() for p in builtin_probes()]


def leaked_strings(loaded: LoadedModel, template: str, samples: int, seed: int, limit: int) -> list[str]:
    """The up to ``limit`` strings that recur in ``samples`` texts the model writes unprompted."""
    return [r.text for r in recurring(sample_unprompted(loaded, template, samples, seed), ordinary_texts(), limit)]


def recurring(samples: Sequence[str], ordinary: Sequence[str], limit: int) -> list[Recurring]:
    """The ``limit`` strings that recur most across ``samples`` far above their rate in ``ordinary``."""
    if not samples or limit < 1:
        return []
    counts: Counter[str] = Counter()
    before: dict[str, list[str]] = {}
    after: dict[str, list[str]] = {}
    for text in samples:
        grams = list(_ngrams(text))
        counts.update({gram for gram, _, _ in grams})
        for gram, left, right in grams:
            before.setdefault(gram, []).append(left)
            after.setdefault(gram, []).append(right)
    floor = 1.0 / (len(ordinary) + 1)
    lowered = [text.lower() for text in ordinary]
    rates: dict[str, float] = {}

    def rate(text: str) -> float:
        if text not in rates:
            pattern = re.compile(r"(?<!\w)" + re.escape(text) + r"(?!\w)")
            rates[text] = sum(bool(pattern.search(o)) for o in lowered) / max(len(lowered), 1)
        return rates[text]

    found = []
    for text, count in counts.items():
        words = [w for w in _TOKEN.findall(text.lower()) if w.isalnum()]
        if count < MIN_SAMPLES or all(rate(w) >= COMMON for w in words):
            continue
        variety = max(len(set(before[text])), len(set(after[text]))) / len(before[text])
        found.append(Recurring(text, count, count / len(samples), max(floor, rate(text.lower())), variety))
    lifted = [r for r in found if r.lift >= LIFT]
    closed = [r for r in lifted if not any(o.samples == r.samples and len(o.text) > len(r.text) and
                                           r.text in o.text for o in lifted)]
    return sorted(closed, key=lambda r: (-r.rank, -r.samples, r.text))[:limit]


def _ngrams(text: str) -> Iterator[tuple[str, str, str]]:
    """Every span of 1 to ``MAX_WORDS`` tokens of ``text`` on one line that begins and ends with a word, as
    written, with the tokens before and after it ("" at either end)."""
    tokens = list(_TOKEN.finditer(text))
    words = [t.group().lower() for t in tokens]
    for first, start in enumerate(tokens):
        if not start.group().isalnum():
            continue
        for last in range(first, min(first + MAX_WORDS, len(tokens))):
            span = text[start.start():tokens[last].end()]
            if "\n" in span:
                break
            if tokens[last].group().isalnum():
                yield (span, words[first - 1] if first else "", words[last + 1] if last + 1 < len(words) else "")
