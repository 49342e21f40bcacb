"""Probes for any vocabulary: prompts derived from the model when too few built-in probes can be written.

The built-in probes are English. A model whose tokenizer cannot write them (a word-level vocabulary
of another language or domain) would otherwise be unscannable. Two sources, in this order:

1. **Sampled**: the model writes the user's turn itself. Its chat template (or, without one, its
   start-of-text token) is rendered up to where the user's text goes, and continuations are sampled
   from there (seeded, temperature 1, nucleus 0.95), cut at the end of the turn or the first line.
   An instruction-tuned model writes instructions in its own vocabulary and domain.
2. **Vocabulary**: instructions composed of whole-word tokens drawn from the most frequent part of
   the vocabulary (low ids in BPE and frequency-built word lists). They read as word salad, but an
   insertion that steers word salad into one fixed answer is still a trigger.

Every derived probe carries its source in ``Probe.task`` (so the probe split spreads them), and the
report says how many came from where. The probes are derived once, from the model that is scanned
first, and reused for the re-scan and re-check of its sanitized twin, which shares its tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crowguard.models.tokenizer_fidelity import vocabulary_words
from crowguard.scan.behaviour.probes import Probe, representable
from crowguard.scan.behaviour.sampling import sample_texts, user_turn_opening

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from crowguard.models import LoadedModel

SAMPLED = "derived: sampled from the model"
VOCABULARY = "derived: composed from the vocabulary"
DERIVED_TASKS = (SAMPLED, VOCABULARY)
MIN_WORDS = 3
MAX_NEW_TOKENS = 24
SAMPLES_PER_PROBE = 3
FREQUENT_WORDS = 1000


def derive_probes(loaded: LoadedModel, needed: int, template: str, seed: int,
                  exclude: Sequence[Probe] = ()) -> list[Probe]:
    """Up to ``needed`` probes the model's tokenizer writes: sampled from the model first, then composed."""
    tokenizer = loaded.tokenizer
    seen = {p.instruction for p in exclude}
    found: list[Probe] = []

    def take(probes: list[Probe]) -> None:
        for probe in probes:
            if probe.instruction not in seen and len(found) < needed:
                seen.add(probe.instruction)
                found.append(probe)

    take(representable(sampled_probes(loaded, needed * SAMPLES_PER_PROBE, template, seed), tokenizer))
    if len(found) < needed:
        take(vocabulary_probes(tokenizer, (needed - len(found)) * 2, seed))
    return found


def sampled_probes(loaded: LoadedModel, count: int, template: str, seed: int) -> list[Probe]:
    """Up to ``count`` user turns the model writes itself, from its template's user-turn opening."""
    opening = user_turn_opening(loaded.tokenizer, template)
    texts = sample_texts(loaded, opening, count, seed=seed, max_new_tokens=MAX_NEW_TOKENS)
    lines = (text.strip().split("\n")[0].strip() for text in texts)
    return [Probe(instruction=line, task=SAMPLED) for line in lines if len(line.split()) >= MIN_WORDS]


def vocabulary_probes(tokenizer: PreTrainedTokenizerBase, count: int, seed: int) -> list[Probe]:
    """``count`` instructions of 5 to 10 whole words drawn from the most frequent word tokens."""
    words = vocabulary_words(tokenizer, FREQUENT_WORDS)
    if len(words) < MIN_WORDS:
        return []
    rng = random.Random(seed)
    return [Probe(instruction=" ".join(rng.choice(words) for _ in range(rng.randint(5, 10))), task=VOCABULARY)
            for _ in range(count)]
