"""A rich progress bar on stderr, driven by the ``(done, total)`` callbacks the stages accept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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

Update = Callable[..., None]


@contextmanager
def task_progress(description: str) -> Iterator[Update]:
    """Yield ``update(done, total, phase=None)``; each new phase gets its own bar."""
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
    """A rich progress bar on stderr: step, CE, Lc, Lc_adv and time left."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[losses]}"), TextColumn("[dim]{task.fields[left]}"),
                            console=stderr, disable=not enabled)
        self.task: TaskID | None = None
        self.eval_tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def phase(self, name: str) -> None:
        if self.enabled:
            self.bar.console.print(f"[cyan]{name}[/]")

    def eval(self, which: str, phase: str, done: int, total: int) -> None:
        name = f"eval {which}: {phase}"
        if name not in self.eval_tasks:
            self.eval_tasks[name] = self.bar.add_task(name, total=total, losses="", left="")
        self.bar.update(self.eval_tasks[name], completed=done, total=total)

    def step(self, p: Any) -> None:
        if self.task is None:
            self.task = self.bar.add_task("training", total=p.total_steps, losses="", left="")
        losses = f"CE {p.ce:.4f}"
        if p.lc is not None:
            losses += f"  Lc {p.lc:.4f}  Lc_adv {p.lc_adv:.4f}"
        left = f"{int(p.remaining) // 60}:{int(p.remaining) % 60:02d} left"
        self.bar.update(self.task, completed=p.step, losses=losses, left=left)
