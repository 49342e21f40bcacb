"""Progress on stderr, driven by the ``(done, total)`` callbacks the stages accept.

On a terminal: rich bars. Anywhere else (a CI log, a file): plain lines, one per phase and at
least every ``CROWGUARD_PROGRESS_INTERVAL`` seconds (30 by default), see ``plain_progress``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from crowguard.cli.guard import stderr
from crowguard.cli.plain_progress import Heartbeat, PlainProgress

if TYPE_CHECKING:
    from crowguard.sanitize.train import Progress as TrainStep

Update = Callable[..., None]


def plain_lines() -> bool:
    """True when stderr is not a terminal: rich would draw nothing there, so progress is printed as lines."""
    return not stderr.is_terminal


def _write_line(line: str) -> None:
    stderr.file.write(line + "\n")
    stderr.file.flush()


@contextmanager
def task_progress(description: str) -> Iterator[Update]:
    """Yield ``update(done, total, phase=None)``; each new phase gets its own bar (or its own lines)."""
    if plain_lines():
        plain = PlainProgress(_write_line)
        plain.note(description)  # heard from at once, and every interval until the first update
        with Heartbeat(plain):
            yield lambda done, total, phase=None: plain.update(phase or description, done, total)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def update(done: int, total: int, phase: str | None = None) -> None:
            name = phase or description
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update


def silence_library_bars() -> None:
    """Turn off transformers' own tqdm bars and chatter (loading and saving weights); our bars say enough."""
    import warnings

    from transformers.utils import logging

    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.set_verbosity_error()
    logging.disable_progress_bar()


class TrainingProgress:
    """The CLI's ``ProgressSink``: rich bars on stderr (step, CE, Lc, Lc_adv, time left), or plain lines."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.plain = PlainProgress(_write_line) if enabled and plain_lines() else None
        self.heartbeat = Heartbeat(self.plain) if self.plain is not None else None
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[losses]}"), TextColumn("[dim]{task.fields[left]}"),
                            console=stderr, disable=not enabled or self.plain is not None)
        self.task: TaskID | None = None
        self.eval_tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        if self.heartbeat is not None:
            self.heartbeat.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.heartbeat is not None:
            self.heartbeat.__exit__(*exc)
        self.bar.__exit__(*exc)

    def phase(self, name: str) -> None:
        if self.plain is not None:
            self.plain.note(name)
        elif self.enabled:
            self.bar.console.print(f"[cyan]{name}[/]")

    def count(self, phase: str, done: int, total: int) -> None:
        """Counted progress (evaluations, scans), one bar (or line series) per phase."""
        if self.plain is not None:
            self.plain.update(phase, done, total)
            return
        if phase not in self.eval_tasks:
            self.eval_tasks[phase] = self.bar.add_task(phase, total=total, losses="", left="")
        self.bar.update(self.eval_tasks[phase], completed=done, total=total)

    def step(self, p: TrainStep) -> None:
        if self.plain is not None:
            losses = f"CE {p.ce:.4f}" + (f", Lc {p.lc:.4f}, Lc_adv {p.lc_adv:.4f}" if p.lc is not None else "")
            self.plain.update("training", p.step, p.total_steps, losses)
            return
        if self.task is None:
            self.task = self.bar.add_task("training", total=p.total_steps, losses="", left="")
        losses = f"CE {p.ce:.4f}"
        if p.lc is not None:
            losses += f"  Lc {p.lc:.4f}  Lc_adv {p.lc_adv:.4f}"
        left = f"{int(p.remaining) // 60}:{int(p.remaining) % 60:02d} left"
        self.bar.update(self.task, completed=p.step, losses=losses, left=left)
