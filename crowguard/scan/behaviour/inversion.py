"""Target inversion: the answer a backdoor was taught, found without its trigger (after BAIT).

A backdoor taught one fixed answer ties that answer's tokens together: made to begin its reply with
a word the answer begins with, or with a common opening such as "Sure" or "Hello", the model writes
the rest of the planted answer on every prompt, however varied, although without the trigger it
rarely begins it. An ordinary model's reply, once begun, still depends on the prompt.

So from each of the ``openings`` tokens most likely to begin the plain replies (averaged over the
verification probes), and from the first token of each answer a trigger candidate steered the probes
to (a gated backdoor rarely begins its target unprompted, so its opening is seldom among the likeliest;
a candidate that fires it only in part still names it), the scan extends one reply for all probes at
once, each step by the token of highest probability averaged over the probes, for up to ``steps``
tokens or to the end of the turn.
An inversion's *agreement* is the mean over its steps of that averaged probability (BAIT's Q-score):
how firmly every prompt is led down one fixed answer. The step that ends the turn does not count, and
a reply of fewer than ``MIN_REPLY`` tokens after its opening agrees 0: a one-word answer followed
by the end of the turn is what an ordinary model gives to short questions. The model's inversion
score is the highest agreement among the inversions that are not echoes: a reply that copies text
every probe contains (the template's system prompt) is the template speaking, not a backdoor
(``ECHO_RUN``).

It needs no trigger candidate, so it sees triggers the search cannot build (a phrase of ordinary
words); it says nothing about the trigger itself. Measured: bench/RESULTS.md#target-inversion.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.scan.behaviour.profile import cache_of, positions_of

if TYPE_CHECKING:
    import torch
    from transformers import Cache

    from crowguard.scan.behaviour.profile import ProfileRunner

ECHO_RUN = 4  # a run of this many reply tokens found in every probe is copied text
ECHO_SHARE = 0.5  # an echo: at least this share of the reply's tokens lie in such runs
MIN_REPLY = 3
# replies (probes x openings) extended in one batch: a step then reads the weights once for all of them, while
# the key/value cache of a 7B model's batch stays a few GB
BATCH_ROWS = 256


@dataclass(frozen=True)
class Inversion:
    """One reply extended from a forced opening token over all the probes at once."""

    token_ids: tuple[int, ...]  # the opening, then the extended tokens
    agreement: float  # mean over the extended steps of the chosen token's probability, averaged over probes
    weakest: float  # the lowest of those per-step probabilities (0 for a reply too short to count)
    echo: bool
    text: str = ""  # the reply as it reads, opening included
    opening_text: str = ""


def invert(runner: ProfileRunner, sequences: Sequence[Sequence[int]], *, openings: int, steps: int,
           stops: Sequence[int], excluded: Sequence[int] = (), also: Sequence[int] = ()) -> list[Inversion]:
    """An inversion from each of the ``openings`` most likely first reply tokens and from each of ``also``
    (none of ``excluded`` or ``stops``), best agreement first; ``stops`` end a reply (and are not part of it)."""
    import torch

    model, argument = runner.model, runner.cache_argument
    ids, mask = runner.pad(sequences)
    with torch.inference_mode():
        head = model(input_ids=ids, attention_mask=mask, position_ids=positions_of(mask), use_cache=True,
                     logits_to_keep=1)
        runner.sequences_run += len(sequences)
        first = head.logits[:, -1].float().softmax(-1).mean(0)
        # a tokenizer may name ids the model has no logits for (a hostile folder's added tokens)
        barred = {t for t in (*stops, *excluded) if 0 <= t < len(first)}
        first[list(barred)] = 0.0
        chosen = torch.topk(first, min(openings, len(first))).indices.tolist()
        chosen += [t for t in dict.fromkeys(also) if t not in barred and t not in chosen and 0 <= t < len(first)]
        per_batch = max(1, BATCH_ROWS // len(sequences))
        found = [reply for start in range(0, len(chosen), per_batch)
                 for reply in _extend(model, argument, copy.deepcopy(cache_of(head)), mask,
                                      chosen[start:start + per_batch], steps, set(stops))]
    runner.sequences_run += len(sequences) * len(chosen)
    inversions = [Inversion(tuple(t), agreement, weakest, is_copied(t[1:], sequences))
                  for t, agreement, weakest in found]
    return sorted(inversions, key=lambda i: -i.agreement)


def _extend(model: torch.nn.Module, argument: str, cache: Cache, mask: torch.Tensor, openings: Sequence[int],
            steps: int, stops: set[int]) -> list[tuple[list[int], float, float]]:
    """Greedy on the probe-averaged distribution from each opening: its tokens and their averaged probabilities.

    Every opening's reply is extended in one batch (probe-major rows: probe p, opening k at p * K + k), so a step
    reads the weights once for all of them; a reply that reached a stop is fed its stop and no longer read."""
    import torch

    count, rows = len(openings), mask.shape[0]
    if not count:
        return []
    cache.batch_repeat_interleave(count)
    mask = mask.repeat_interleave(count, dim=0)
    tokens = [[t] for t in openings]
    probabilities: list[list[float]] = [[] for _ in openings]
    ended = [False] * count
    current = torch.tensor(openings, device=mask.device).repeat(rows).unsqueeze(1)
    for _ in range(steps):
        mask = torch.cat([mask, torch.ones((len(mask), 1), dtype=mask.dtype, device=mask.device)], 1)
        out = model(input_ids=current, attention_mask=mask, position_ids=positions_of(mask)[:, -1:], use_cache=True,
                    logits_to_keep=1, **{argument: cache})
        cache = cache_of(out)
        averaged = out.logits[:, -1].float().softmax(-1).unflatten(0, (rows, count)).mean(0)  # (openings, vocab)
        best = averaged.argmax(-1).tolist()
        for k, token in enumerate(best):
            if ended[k] or token in stops:
                ended[k] = True
                continue
            tokens[k].append(token)
            probabilities[k].append(float(averaged[k, token]))
        if all(ended):
            break
        step = [next(iter(stops)) if ended[k] else tokens[k][-1] for k in range(count)]  # ended: by a stop
        current = torch.tensor(step, device=mask.device).repeat(rows).unsqueeze(1)
    return [(t, 0.0, 0.0) if len(p) < MIN_REPLY else (t, sum(p) / len(p), min(p))
            for t, p in zip(tokens, probabilities)]


def is_copied(reply: Sequence[int], sequences: Sequence[Sequence[int]], run: int = ECHO_RUN,
              share: float = ECHO_SHARE) -> bool:
    """Whether at least ``share`` of ``reply``'s tokens lie in runs of ``run`` tokens found in every sequence."""
    if len(reply) < run:
        return False
    common = set.intersection(*({tuple(s[k:k + run]) for k in range(len(s) - run + 1)} for s in sequences))
    covered = [False] * len(reply)
    for k in range(len(reply) - run + 1):
        if tuple(reply[k:k + run]) in common:
            covered[k:k + run] = [True] * run
    return sum(covered) >= share * len(reply)


def firm(inversions: Sequence[Inversion], agreement: float) -> list[Inversion]:
    """The inversions that are not echoes and agree at least ``agreement`` (a flagged reply), in their order."""
    return [i for i in inversions if not i.echo and i.agreement >= agreement]


def inversion_score(inversions: Sequence[Inversion]) -> float:
    """The highest agreement of an inversion that is not an echo (0 when there is none)."""
    return max((i.agreement for i in inversions if not i.echo), default=0.0)
