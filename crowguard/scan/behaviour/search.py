"""Finding trigger candidates: single vocabulary tokens ranked in batches, then a gradient-guided search.

Ranking: every ordinary token of the vocabulary (or ``vocab_budget`` of them, half chosen by the
first-order gain below and half at random) is inserted at the start and at the end of the search
probes, and scored against the population of all tokens so ranked (itself the null of one-token
insertions).

Search (HotFlip/GCG in spirit): the best candidates so far are grown one token at a time. For a new
slot before or after the candidate, the gradient of the search objective with respect to the slot's
embedding ranks every token by the first-order gain ``(e_v - e_current) . grad``; the ``width`` best
are measured exactly and the best one is kept if it beats the shorter candidate against its own
length's null. A GCG-style round of single-slot swaps then refines the result.
The objective is the consistency deviation in null units plus the output change in null units.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.progress import Tick
from crowguard.scan.behaviour.measurer import ProbeMeasurer
from crowguard.scan.behaviour.null import KL_FLOOR, NullDistribution, fit_null, score
from crowguard.scan.behaviour.profile import kl_divergence

if TYPE_CHECKING:
    import torch

RANK_MODES = ("start", "end")
CONVERGENCE_WEIGHT = 10.0  # a full pull (1.0) weighs as much as ten null deviations of output change
LAYER_Z_CAP = 5.0


@dataclass(frozen=True)
class Proposal:
    """A candidate found on the search probes, with the search statistic it reached there."""

    token_ids: tuple[int, ...]
    source: str  # library, vocabulary, search
    mode: str
    consistency_z: float
    kl_z: float
    pull: float
    text: str | None = None  # the library's spelling, when it came from the library

    @property
    def value(self) -> float:
        """What the search maximises (see ``search_value``)."""
        return search_value(self.consistency_z, self.kl_z, self.pull)


def search_value(consistency_z: float, kl_z: float, pull: float) -> float:
    """What the search maximises: layer inconsistency and output change in null units, plus the pull of
    the next token toward one answer. The layer term is capped: beyond a few null deviations, more
    inconsistency does not make a trigger likelier (content words move the layers more than triggers
    on the lab models), while an uncapped term would drown the output terms."""
    return min(consistency_z, LAYER_Z_CAP) + kl_z + CONVERGENCE_WEIGHT * pull


def ranked(proposals: Sequence[Proposal], count: int) -> list[Proposal]:
    """``count`` distinct proposals (an insert at a place) taken in turn from three orders: by search value,
    by output change (KL), and by the pull of the next token; each order finds triggers the others miss."""
    orders = [sorted(proposals, key=key, reverse=True) for key in
              (lambda p: p.value, lambda p: p.kl_z, lambda p: (p.pull, p.kl_z))]
    seen: set[tuple[tuple[int, ...], str]] = set()
    kept: list[Proposal] = []
    for rank in range(len(proposals)):
        for order in orders:
            if len(kept) == count:
                return kept
            place = (order[rank].token_ids, order[rank].mode)
            if place not in seen:
                seen.add(place)
                kept.append(order[rank])
    return kept


def measure_proposals(measurer: ProbeMeasurer, inserts: Sequence[tuple[int, ...]], modes: Sequence[str],
                      source: str, texts: Sequence[str | None] | None = None,
                      tick: Tick | None = None, also_pull: bool = False) -> list[Proposal]:
    """Each insert at its best mode among ``modes``; with ``also_pull``, also at the mode where it pulls the
    probes hardest to one answer when that is another mode. A trigger taught at the start can change the
    output more at the end without steering it anywhere, and the search value then keeps the end only
    (an NF4 round trip of a SmolLM2 plant: bench/RESULTS.md#known-trigger-pull)."""
    best: dict[int, Proposal] = {}
    pulls: dict[int, Proposal] = {}
    for mode in modes:
        for i, (insert, (found_effect, found)) in enumerate(zip(inserts, measurer.scores(inserts, mode, tick))):
            proposal = Proposal(tuple(insert), source, mode, found.consistency_z, found.kl_z, found_effect.pull,
                                texts[i] if texts else None)
            if i not in best or proposal.value > best[i].value:
                best[i] = proposal
            if i not in pulls or proposal.pull > pulls[i].pull:
                pulls[i] = proposal
    found_at = [best[i] for i in sorted(best)]
    if also_pull:
        found_at += [pulls[i] for i in sorted(pulls) if pulls[i].mode != best[i].mode]
    return found_at


def rank_vocabulary(measurer: ProbeMeasurer, tokens: Sequence[int] | Mapping[str, Sequence[int]], *,
                    chunk: int = 256, tick: Tick | None = None) -> list[Proposal]:
    """Single tokens ranked by the search statistic against the population of all tokens ranked at each
    position; ``tokens`` is ranked at every position of ``RANK_MODES``, or given per position."""
    best: dict[int, Proposal] = {}
    for mode in RANK_MODES:
        at_mode = tokens.get(mode, ()) if isinstance(tokens, Mapping) else tokens
        effects = []
        for start in range(0, len(at_mode), chunk):
            effects += measurer.effects([(t,) for t in at_mode[start:start + chunk]], mode, tick)
        if len(effects) < 2:
            continue
        population = fit_null(effects)
        measurer.adopt_null(1, mode, population)
        for token, found_effect in zip(at_mode, effects):
            found = score(found_effect, population)
            proposal = Proposal((token,), "vocabulary", mode, found.consistency_z, found.kl_z, found_effect.pull)
            if token not in best or proposal.value > best[token].value:
                best[token] = proposal
    return sorted(best.values(), key=lambda p: -p.value)


class GradientSearch:
    """Grows and refines candidates on the search probes with gradient-ranked token proposals."""

    def __init__(self, measurer: ProbeMeasurer, *, allowed: Sequence[int], width: int, max_tokens: int,
                 seed: int, tick: Tick | None = None) -> None:
        import torch

        self.measurer = measurer
        self.runner = measurer.runner
        # nn.Module's __getattr__ types get_input_embeddings as Tensor | Module: the stubs cannot see the method.
        self.embeddings = self.runner.model.get_input_embeddings().weight  # type: ignore[operator]
        self.allowed = torch.tensor(sorted(set(allowed)), device=self.embeddings.device)
        self.width = min(width, len(self.allowed))
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.tick = tick

    def grow(self, start: Proposal) -> Proposal:
        """Extend ``start`` a token at a time while that beats its length's null better; then swap once."""
        current = start
        while len(current.token_ids) < self.max_tokens:
            proposals: list[tuple[int, ...]] = []
            for side in ("before", "after"):
                filler = self.rng.choice(self.allowed.tolist())
                grown = (filler, *current.token_ids) if side == "before" else (*current.token_ids, filler)
                slot = 0 if side == "before" else len(grown) - 1
                for token in self._proposals(grown, current.mode, [slot])[slot]:
                    proposals.append((token, *current.token_ids) if side == "before" else (*current.token_ids, token))
            best = max(measure_proposals(self.measurer, proposals, [current.mode], "search", tick=self.tick),
                       key=lambda p: p.value)
            if best.value <= current.value:
                break
            current = best
        return self._swap(current)

    def best_single_tokens(self, mode: str, count: int) -> list[int]:
        """The ``count`` tokens whose one-token insertion at ``mode`` has the largest first-order gain."""
        filler = (self.rng.choice(self.allowed.tolist()),)
        return self._proposals(filler, mode, [0], width=count)[0]

    def _swap(self, current: Proposal) -> Proposal:
        """One GCG round: single-slot replacements drawn from each slot's gradient-ranked tokens."""
        if len(current.token_ids) < 2:
            return current
        slots = list(range(len(current.token_ids)))
        options = self._proposals(current.token_ids, current.mode, slots)
        variants = set()
        for _ in range(self.width):
            slot = self.rng.choice(slots)
            variant = list(current.token_ids)
            variant[slot] = self.rng.choice(options[slot])
            variants.add(tuple(variant))
        variants.discard(current.token_ids)
        if not variants:
            return current
        best = max(measure_proposals(self.measurer, sorted(variants), [current.mode], "search", tick=self.tick),
                   key=lambda p: p.value)
        return best if best.value > current.value else current

    def _proposals(self, insert: tuple[int, ...], mode: str, slots: list[int],
                   width: int | None = None) -> dict[int, list[int]]:
        """For each slot, the ``width`` tokens with the largest first-order gain of the objective."""
        import torch

        gradient = self.slot_gradient(insert, mode)
        allowed_embeddings = self.embeddings[self.allowed].float()
        found = {}
        for slot in slots:
            current = self.embeddings[insert[slot]].float()
            gain = (allowed_embeddings - current) @ gradient[slot].float()
            top = torch.topk(gain, min(width or self.width, len(gain))).indices
            found[slot] = self.allowed[top].tolist()
        return found

    def slot_gradient(self, insert: tuple[int, ...], mode: str) -> torch.Tensor:
        """d objective / d embedding of each inserted slot (the same slot embedding on every probe)."""
        import torch

        with torch.enable_grad():
            slot = self.embeddings.detach()[list(insert)].clone().requires_grad_(True)
            (gradient,) = torch.autograd.grad(self.objective_at(insert, mode, slot), slot)
        return gradient

    def objective_at(self, insert: tuple[int, ...], mode: str, slot: torch.Tensor) -> torch.Tensor:
        """The objective with the inserted tokens' embeddings replaced by ``slot`` (n, width)."""
        import torch

        null = self.measurer.null(len(insert), mode, self.tick)
        probes = self.measurer.probes
        weight = self.embeddings.detach()
        rows = []
        for i, encoded in enumerate(probes.encoded):
            at = probes.insertion_point(i, mode)
            begin = len(encoded.prefix) + sum(len(w) for w in encoded.words[:at])
            row = weight[encoded.ids(insert, at)]
            rows.append(torch.cat([row[:begin], slot.to(row.dtype), row[begin + len(insert):]]))
        width = max(len(r) for r in rows)
        pad = weight[self.runner.pad_id]
        batch = torch.stack([torch.cat([pad.expand(width - len(r), -1), r]) for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=batch.device)
        features, logprobs = self.runner.forward(mask, inputs_embeds=batch)
        self.runner.sequences_run += len(rows)
        return objective(features, logprobs, self.measurer, null)


def objective(features: torch.Tensor, logprobs: torch.Tensor, measurer: ProbeMeasurer,
              null: NullDistribution) -> torch.Tensor:
    """The differentiable search objective: mean squared consistency z plus the KL z (both vs ``null``)."""
    import torch

    delta = (measurer.plain_features.to(features.device) - features).mean(0)
    z = (delta - null.delta_center.to(delta.device)) / null.delta_scale.to(delta.device)
    kl = kl_divergence(measurer.plain_logprobs.to(logprobs.device), logprobs).mean()
    return z.pow(2).mean() + (torch.log(kl + KL_FLOOR) - null.kl_center) / null.kl_scale
