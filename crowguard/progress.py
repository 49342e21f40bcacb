"""The one progress protocol every long-running stage reports through.

A stage never prints: it calls a ``ProgressSink`` the caller hands it. Three kinds of news, one
argument order everywhere:

- ``phase(text)``: a step without counts has begun (loading a model, merging, signing);
- ``count(phase, done, total)``: counted work (prompts generated, candidates verified);
- ``step(progress)``: one finished optimiser step of a training run, with its losses.

``Tick`` (add ``n`` to the current count) is what the inner loops take; ``ticker`` turns a sink and
a phase into one. ``Callbacks`` adapts plain functions (tests, API users), ``NO_PROGRESS`` ignores all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from crowguard.sanitize.train import Progress as TrainStep

Tick = Callable[[int], None]
"""Called as ``tick(n)``: ``n`` more units of the current phase are done."""
Count = Callable[[str, int, int], None]
"""Called as ``count(phase, done, total)``."""


class ProgressSink(Protocol):
    """What a stage reports to; the CLI renders it as bars or log lines."""

    def phase(self, text: str) -> None: ...

    def count(self, phase: str, done: int, total: int) -> None: ...

    def step(self, progress: TrainStep) -> None: ...


@dataclass(frozen=True)
class Callbacks:
    """A ``ProgressSink`` from optional plain functions."""

    on_phase: Callable[[str], None] | None = None
    on_count: Count | None = None
    on_step: Callable[[TrainStep], None] | None = None

    def phase(self, text: str) -> None:
        if self.on_phase is not None:
            self.on_phase(text)

    def count(self, phase: str, done: int, total: int) -> None:
        if self.on_count is not None:
            self.on_count(phase, done, total)

    def step(self, progress: TrainStep) -> None:
        if self.on_step is not None:
            self.on_step(progress)


NO_PROGRESS: ProgressSink = Callbacks()


@dataclass(frozen=True)
class Prefixed:
    """A sink whose counted phases carry a prefix (``eval before: triggered``); the rest passes through."""

    sink: ProgressSink
    prefix: str

    def phase(self, text: str) -> None:
        self.sink.phase(text)

    def count(self, phase: str, done: int, total: int) -> None:
        self.sink.count(f"{self.prefix}: {phase}", done, total)

    def step(self, progress: TrainStep) -> None:
        self.sink.step(progress)


def ticker(count: Count | None, phase: str, total: int) -> Tick | None:
    """A ``Tick`` that reports ``phase`` as ``done/total`` (capped at ``total``); it reports 0 at once."""
    if count is None:
        return None
    done = [0]
    count(phase, 0, total)

    def tick(n: int) -> None:
        done[0] = min(total, done[0] + n)
        count(phase, done[0], total)

    return tick
