"""Progress for logs: plain lines when stderr is not a terminal (CI runners), where rich bars render nothing.

One line when a phase starts, one when it completes, and, while it runs, one at least every
``interval`` seconds (``CROWGUARD_PROGRESS_INTERVAL``, default 30): a heartbeat thread prints the
current phase even when no update arrives, so no phase is silent in a log for longer than that.

    crowguard: searching 120/480 (25%), 1:05 elapsed, about 3:15 left
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

INTERVAL_ENV = "CROWGUARD_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 30.0


def progress_interval() -> float:
    """Seconds between progress lines: ``CROWGUARD_PROGRESS_INTERVAL`` when it is a positive number, else 30."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if 0 < value <= 3600 else DEFAULT_INTERVAL


def clock_text(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Phase:
    started: float
    done: int = 0
    total: int = 0
    extra: str = ""
    finished_at: float | None = None


class PlainProgress:
    """Plain progress lines through ``write``; thread-safe; ``clock`` is injectable for tests."""

    def __init__(self, write: Callable[[str], None], *, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.write = write
        self.interval = progress_interval() if interval is None else interval
        self.clock = clock
        self.phases: dict[str, _Phase] = {}
        self.current: str | None = None
        self.last_line = clock()
        self._lock = threading.Lock()

    def update(self, name: str, done: int, total: int, extra: str = "") -> None:
        """A phase's progress: a line at its start, at its end, and when ``interval`` has passed."""
        with self._lock:
            now = self.clock()
            phase = self.phases.get(name)
            fresh = phase is None
            if phase is None:
                phase = self.phases[name] = _Phase(started=now)
            phase.done, phase.total, phase.extra = done, total, extra
            switched, self.current = self.current != name, name
            ended = total > 0 and done >= total and phase.finished_at is None
            if ended:
                phase.finished_at = now
            if fresh or switched or ended or now - self.last_line >= self.interval:
                self._line(name, phase, now)

    def note(self, text: str) -> None:
        """A phase without counts (loading, sanitizing ...): its line now, then heartbeats while it lasts."""
        with self._lock:
            now = self.clock()
            self.phases[text] = _Phase(started=now)
            self.current = text
            self._line(text, self.phases[text], now)

    def beat(self) -> None:
        """Print the current phase if nothing was printed for ``interval`` seconds (the heartbeat's call)."""
        with self._lock:
            now = self.clock()
            if self.current is None or now - self.last_line < self.interval:
                return
            phase = self.phases[self.current]
            if phase.finished_at is None:
                self._line(self.current, phase, now)
            else:  # between phases: say what finished last, not a growing "elapsed" of a done phase
                self.write(f"crowguard: {self.current} finished {clock_text(now - phase.finished_at)} ago, "
                           "the next step is running")
                self.last_line = now

    def _line(self, name: str, phase: _Phase, now: float) -> None:
        elapsed = now - phase.started
        parts = [f"crowguard: {name}"]
        if phase.total > 0:
            parts[0] += f" {phase.done}/{phase.total} ({100 * phase.done // phase.total}%)"
        parts.append(f"{clock_text(elapsed)} elapsed")
        if phase.total > 0 and phase.done >= phase.total:
            parts.append("done")
        elif phase.total > 0 and phase.done > 0:
            parts.append(f"about {clock_text(elapsed / phase.done * (phase.total - phase.done))} left")
        elif phase.total > 0:
            parts.append("estimate after the first step")
        if phase.extra:
            parts.append(phase.extra)
        self.write(", ".join(parts))
        self.last_line = now


class Heartbeat:
    """A daemon thread calling ``progress.beat()`` several times per interval, while in the ``with`` block."""

    def __init__(self, progress: PlainProgress) -> None:
        self.progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="crowguard-progress", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        step = min(self.progress.interval / 4, 1.0)
        while not self._stop.wait(step):
            self.progress.beat()
