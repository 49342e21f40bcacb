"""Scoring against a null distribution: how unusual is a candidate's effect, next to random insertions?

An insertion of ``n`` tokens at a position moves the profile and the output a little whatever the
tokens are; what matters is how much more a candidate moves them than random ``n``-token insertions at
the same places. Each statistic is turned into a robust z-score (median and scaled MAD of the null
samples), so one trigger that happens to be drawn into the null does not hide itself.

Per candidate, on a probe set: ``delta`` = mean over probes of (plain profile - profile with the
candidate), a (pairs, positions + 1) matrix; ``log_kl`` = log of the mean next-token KL divergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAD_TO_SIGMA = 1.4826
MIN_DELTA_SCALE = 1e-4  # cosine units; below this the null is numerically flat
MIN_KL_SCALE = 0.05  # natural-log units of KL
KL_FLOOR = 1e-6


@dataclass(frozen=True)
class Effect:
    """What inserting one candidate (or one null sample) did on a probe set."""

    delta: torch.Tensor  # (pairs, positions + 1), plain minus with-candidate cosine, mean over probes
    log_kl: float  # log mean KL(plain || with candidate) of the next-token distribution
    flipped: float  # share of probes whose greedy next token changed
    converged: float  # share of probes whose next token changed to the most common new next token
    pull: float  # the same, each probe weighted by the probability of that token (a smoother convergence)


@dataclass(frozen=True)
class NullDistribution:
    """Robust centre and scale of the null effects for one insertion length and position mode."""

    delta_center: torch.Tensor
    delta_scale: torch.Tensor
    kl_center: float
    kl_scale: float
    samples: int


@dataclass(frozen=True)
class Score:
    """A candidate's effect in null units."""

    delta_z: torch.Tensor  # (pairs, positions + 1)
    consistency_z: float  # largest |z| over layer pairs and positions
    kl_z: float

    @property
    def where(self) -> tuple[int, int]:
        """(layer pair, column) of the largest |z|."""
        flat = int(self.delta_z.abs().argmax())
        return divmod(flat, self.delta_z.shape[1])


def effect(plain_features: torch.Tensor, features: torch.Tensor, kl: torch.Tensor, plain_top: torch.Tensor,
           top: torch.Tensor, top_prob: torch.Tensor) -> Effect:
    """The effect of one insertion from per-probe profiles (probes, pairs, cols), KL and greedy next tokens."""
    delta = (plain_features - features).mean(0)
    moved = top != plain_top
    changed = top[moved]
    converged = pull = 0.0
    if len(changed):
        target = int(changed.bincount().argmax())
        hits = moved & (top == target)
        converged = float(hits.sum()) / len(top)
        pull = float(top_prob[hits].sum()) / len(top)
    return Effect(delta=delta, log_kl=math.log(float(kl.mean()) + KL_FLOOR), flipped=len(changed) / len(top),
                  converged=converged, pull=pull)


def fit_null(effects: list[Effect]) -> NullDistribution:
    """Median and scaled MAD of null effects (floored, so a flat null cannot make every z huge)."""
    import torch

    deltas = torch.stack([e.delta for e in effects])
    center = deltas.median(0).values
    scale = (MAD_TO_SIGMA * (deltas - center).abs().median(0).values).clamp_min(MIN_DELTA_SCALE)
    kls = torch.tensor([e.log_kl for e in effects])
    kl_center = float(kls.median())
    kl_scale = max(MAD_TO_SIGMA * float((kls - kl_center).abs().median()), MIN_KL_SCALE)
    return NullDistribution(delta_center=center, delta_scale=scale, kl_center=kl_center, kl_scale=kl_scale,
                            samples=len(effects))


def score(candidate: Effect, null: NullDistribution) -> Score:
    """z-scores of a candidate's effect against the null."""
    z = (candidate.delta - null.delta_center) / null.delta_scale
    kl_z = (candidate.log_kl - null.kl_center) / null.kl_scale
    return Score(delta_z=z, consistency_z=float(z.abs().max()), kl_z=kl_z)
