"""What a behavioural scan hands on: trigger candidates, the evidence verification measured, the plain answers.

A verified candidate is always measured for its effect and its answers (the target share). Its
z-scores against random insertions are measured where they can matter: when a scan is given the
policy's bounds, a candidate whose target share is below the threshold and below that of a candidate
already counted can change neither the verdict nor the score, and is left unscored
(``CandidateEvidence.scored`` is False, its z fields None; it does not count). A candidate whose target
repeats its own words is an echo (``echo``) and does not count either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TriggerCandidate:
    """A trigger candidate as text (how it reads) and token ids (what was inserted)."""

    text: str
    token_ids: tuple[int, ...]
    source: str = "given"
    mode: str | None = None  # where it is strongest (start, random, end); None: try every position
    target_share: float | None = None  # measured by a scan: the share of probes it steered to one answer
    target: str | None = None  # measured by a scan: that common answer


@dataclass(frozen=True)
class CandidateEvidence:
    """A candidate verified on the verification probes: layer, output and convergence evidence."""

    candidate: TriggerCandidate
    mode: str
    consistency_z: float | None  # None: not scored against a null (see the module)
    kl_z: float | None
    flipped: float
    pull: float
    target_share: float
    target_text: str
    layer_pair: int  # where the layer change is largest: in null units when scored, else raw
    column: int
    layer_delta: tuple[float, ...]
    layer_z: tuple[float, ...] | None
    profile_with: tuple[float, ...]
    examples: tuple[dict[str, str], ...] = ()
    echo: bool = False  # its target repeats a word of it (``echo``): it does not count

    @property
    def scored(self) -> bool:
        """Whether the candidate was scored against its null (only a scored candidate can count)."""
        return self.consistency_z is not None and self.kl_z is not None


@dataclass(frozen=True)
class FixedAnswer:
    """The most common greedy answer to the plain verification probes (nothing inserted)."""

    text: str
    count: int
    probes: int
    examples: tuple[str, ...] = ()  # prompts that got it

    @property
    def share(self) -> float:
        return self.count / self.probes if self.probes else 0.0
