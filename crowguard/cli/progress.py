"""A rich progress bar on stderr, driven by the ``(done, total)`` callbacks the stages accept."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from crowguard.cli.guard import stderr

Update = Callable[..., None]


@contextmanager
def task_progress(description: str) -> Iterator[Update]:
    """Yield ``update(done, total, phase=None)``; each new phase gets its own bar."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=False) as bar:
        tasks: dict[str, int] = {}

        def update(done: int, total: int, phase: str | None = None) -> None:
            name = phase or description
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done, total=total)

        yield update


def silence_library_bars() -> None:
    """Turn off transformers' own tqdm bars (loading and saving weights); our bars say enough."""
    from transformers.utils import logging

    logging.disable_progress_bar()
