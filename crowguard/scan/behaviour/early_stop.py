"""When a scan may stop spending: the policy's bounds, and what settles a verdict early.

A scan that knows the bounds its verdict is read against (the policy's ``min_layer_z`` and
``threshold``) can save work in two places without changing a verdict or the score:

- **Nulls.** The model's score is the largest target share of a counted candidate, so a candidate
  whose target share is below the threshold and below that of a candidate already counted cannot
  change it: verification scores candidates in order of target share and leaves those unscored
  (``verification``). The score and the verdict are the ones a full measurement gives.
- **Search.** The model's score is the largest score over verified candidates, so more candidates can
  only raise it: once a verified candidate counts and its target share clears the threshold by
  ``SHARE_MARGIN``, the model is flagged whatever the gradient search would add, and the search is
  skipped (the score it reports may then be lower than the search would have found, never below
  the threshold). It is tried only for proposals that already pull the search probes' next token
  to one answer (``EARLY_PULL``), so a clean model seldom pays for it.

Without bounds (``scan_loaded(..., stop=None)``) a scan measures everything, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowguard.errors import ConfigError

MIN_KL_Z = 0.0  # a counted candidate moves the output more than its null's median does
SHARE_MARGIN = 0.05  # a flagging candidate's target share over the threshold that ends the search
EARLY_PULL = 0.5  # search-probe pull from which a proposal is verified before the search
EARLY_CHECKS = 2  # proposals verified before the search, at most


@dataclass(frozen=True)
class StopBounds:
    """The policy's decision bounds, given to a scan so that it can stop where they are settled."""

    min_layer_z: float
    threshold: float

    def __post_init__(self) -> None:
        if self.min_layer_z < 0 or not 0 < self.threshold <= 1:
            raise ConfigError(f"stop bounds min_layer_z={self.min_layer_z}, threshold={self.threshold} out of range",
                              hint="min_layer_z >= 0 and 0 < threshold <= 1, as in the policy")

    def flags_clearly(self, consistency_z: float, kl_z: float, target_share: float, *, echo: bool) -> bool:
        """Whether a verified candidate settles the verdict: it counts and clears the threshold by the margin."""
        clears = target_share >= min(1.0, self.threshold + SHARE_MARGIN)
        return clears and counted(consistency_z, kl_z, self.min_layer_z, echo=echo)


def counted(consistency_z: float, kl_z: float, min_layer_z: float, *, echo: bool) -> bool:
    """Whether a candidate moved the layers and the output beyond its null and is not an echo of itself
    (``decision.counts``; ``echo``)."""
    return not echo and consistency_z >= min_layer_z and kl_z > MIN_KL_Z
