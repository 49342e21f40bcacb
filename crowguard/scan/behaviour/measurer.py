"""Measuring candidates on one probe set: plain baseline once, null distributions per length and position.

A ``ProbeMeasurer`` owns a probe set, its plain profiles and next-token distributions, and a cache of
null distributions keyed by (insertion length, position mode). Candidates are measured in batches, so
that many single tokens or search proposals share forward passes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crowguard.progress import Tick
from crowguard.scan.behaviour.encoding import ProbeSet
from crowguard.scan.behaviour.null import Effect, NullDistribution, Score, effect, fit_null, score
from crowguard.scan.behaviour.profile import ProfileRunner

if TYPE_CHECKING:
    import torch

SHARED_PREFIX_MIN = 8  # from this many inserts on, running each probe's shared prefix once pays off


class ProbeMeasurer:
    """Effects and scores of token insertions on one probe set."""

    def __init__(self, runner: ProfileRunner, probes: ProbeSet, *, null_tokens: Sequence[int], null_samples: int,
                 seed: int) -> None:
        self.runner = runner
        self.probes = probes
        self.null_tokens = list(null_tokens)
        self.null_samples = null_samples
        self.seed = seed
        plain = runner.run(probes.plain())
        self.plain_features = plain.features
        self.plain_logprobs = plain.next_token
        self.plain_top = plain.top_token
        self._nulls: dict[tuple[int, str], NullDistribution] = {}

    def effects(self, inserts: Sequence[Sequence[int]], mode: str, tick: Tick | None = None) -> list[Effect]:
        """The effect of each insert at position ``mode`` on every probe (batched runs)."""
        if not inserts:
            return []
        features, kl, top, prob = (self._run_by_probe if len(inserts) >= SHARED_PREFIX_MIN else self._run_batched)(
            inserts, mode, tick)
        return [effect(self.plain_features, features[k], kl[k], self.plain_top, top[k], prob[k])
                for k in range(len(inserts))]

    def _run_batched(self, inserts: Sequence[Sequence[int]], mode: str,
                     tick: Tick | None) -> tuple[torch.Tensor, ...]:
        """Every (insert, probe) sequence in padded batches; results shaped (inserts, probes, ...)."""
        shape = (len(inserts), len(self.probes))
        sequences = [seq for insert in inserts for seq in self.probes.sequences(insert, mode)]
        run = self.runner.run(sequences, baseline=self.plain_logprobs.repeat(len(inserts), 1), tick=tick)
        return tuple(t.unflatten(0, shape) for t in (run.features, run.next_token, run.top_token, run.top_prob))

    def _run_by_probe(self, inserts: Sequence[Sequence[int]], mode: str,
                      tick: Tick | None) -> tuple[torch.Tensor, ...]:
        """Per probe, the part before the insertion point once, then every insert with the rest."""
        import torch

        count, (pairs, columns) = len(self.probes), self.plain_features.shape[1:]
        features = torch.empty(len(inserts), count, pairs, columns)
        kl = torch.empty(len(inserts), count)
        top = torch.empty(len(inserts), count, dtype=torch.long)
        prob = torch.empty(len(inserts), count)
        by_length: dict[int, list[int]] = {}
        for k, insert in enumerate(inserts):
            by_length.setdefault(len(insert), []).append(k)
        for i in range(count):
            prefix, rest = self.probes.split(i, mode)
            for group in by_length.values():
                tails = [[*inserts[k], *rest] for k in group]
                baseline = self.plain_logprobs[i:i + 1].expand(len(tails), -1)
                if prefix:
                    run = self.runner.run_shared_prefix(prefix, tails, baseline=baseline, tick=tick)
                else:
                    run = self.runner.run(tails, baseline=baseline, tick=tick)
                features[group, i] = run.features
                kl[group, i] = run.next_token
                top[group, i] = run.top_token
                prob[group, i] = run.top_prob
        return features, kl, top, prob

    def null(self, length: int, mode: str, tick: Tick | None = None) -> NullDistribution:
        """The null distribution of random ``length``-token insertions at ``mode`` (computed once)."""
        key = (length, mode)
        if key not in self._nulls:
            rng = random.Random(f"{self.seed}-{length}-{mode}")
            inserts = [tuple(rng.choice(self.null_tokens) for _ in range(length)) for _ in range(self.null_samples)]
            self._nulls[key] = fit_null(self.effects(inserts, mode, tick))
        return self._nulls[key]

    def scores(self, inserts: Sequence[Sequence[int]], mode: str,
               tick: Tick | None = None) -> list[tuple[Effect, Score]]:
        """Effects and null-relative scores of inserts (of any lengths) at ``mode``."""
        found = self.effects(inserts, mode, tick)
        return [(e, score(e, self.null(len(insert), mode, tick))) for insert, e in zip(inserts, found)]

    @property
    def plain_profile(self) -> torch.Tensor:
        """Mean plain profile over probes, (pairs, positions + 1)."""
        return self.plain_features.mean(0)

    def adopt_null(self, length: int, mode: str, null: NullDistribution) -> None:
        """Use ``null`` (e.g. from ranking the whole vocabulary) for (length, mode), unless one exists."""
        self._nulls.setdefault((length, mode), null)
