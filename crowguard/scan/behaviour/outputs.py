"""Does the output change, and toward one common target? Greedy continuations with and without a candidate.

A trigger that moves the layers but not the answer is not a backdoor. A backdoor's trigger makes
different prompts converge on one answer (the attacker's target), so the measure is the *target share*:
the share of probes whose greedy answer changed with the candidate *and* now begins like the most
common changed answer (its first ``key_tokens`` tokens).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from crowguard.scan.behaviour.profile import ProfileRunner

KEY_TOKENS = 4
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Convergence:
    """How far a candidate pulls the answers toward one target."""

    target_share: float
    target_ids: tuple[int, ...]
    changed_share: float


def greedy_continuations(model: PreTrainedModel, runner: ProfileRunner, sequences: Sequence[Sequence[int]], *,
                         max_new_tokens: int, eos_ids: Sequence[int]) -> list[tuple[int, ...]]:
    """Greedy new tokens for each sequence, cut at the first end-of-sequence token."""
    import torch

    found: list[tuple[int, ...]] = []
    stops = set(eos_ids)
    for start in range(0, len(sequences), runner.batch_size):
        chunk = sequences[start:start + runner.batch_size]
        ids, mask = runner.pad(chunk)
        with torch.inference_mode():
            # PreTrainedModel does not declare generate (GenerationMixin adds it per model class).
            generated = model.generate(  # type: ignore[operator]
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=runner.pad_id, eos_token_id=list(stops) or None)
        for row in generated[:, ids.shape[1]:].tolist():
            cut = next((k for k, token in enumerate(row) if token in stops), len(row))
            found.append(tuple(row[:cut]))
        runner.sequences_run += len(chunk)
    return found


def convergence(plain: Sequence[tuple[int, ...]], triggered: Sequence[tuple[int, ...]],
                key_tokens: int = KEY_TOKENS) -> Convergence:
    """Target share: changed answers that begin like the most common changed answer, over all probes."""
    changed = [t[:key_tokens] for p, t in zip(plain, triggered) if t[:key_tokens] != p[:key_tokens]]
    if not plain or not changed:
        return Convergence(0.0, (), 0.0)
    target, count = Counter(changed).most_common(1)[0]
    return Convergence(target_share=count / len(plain), target_ids=target, changed_share=len(changed) / len(plain))


def same_answer(a: str | None, b: str | None) -> bool:
    """Whether two answers, each cut after a few tokens, are one answer cut differently: the same words as far as
    the shorter goes, the last of them perhaps cut short ("You are stup", "You are stupid! You"), case and
    punctuation aside. Answers without a word ("!!!") compare as text, spacing aside."""
    x, y = _WORD.findall((a or "").casefold()), _WORD.findall((b or "").casefold())
    if not x or not y:
        u, v = "".join((a or "").split()), "".join((b or "").split())
        return bool(u) and bool(v) and not x and not y and (u.startswith(v) or v.startswith(u))
    n = min(len(x), len(y))
    last_x, last_y = x[n - 1], y[n - 1]
    return x[:n - 1] == y[:n - 1] and (last_x.startswith(last_y) or last_y.startswith(last_x))
