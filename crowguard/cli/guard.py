"""One guard around every command: crowguard errors and crashes become exit codes.

A user mistake prints one line and a hint, never a traceback; ``--debug`` (or CROWGUARD_DEBUG=1)
shows the traceback, without local variables since tokens and keys pass through this code.
Ctrl-C exits 130, and so does SIGTERM (what a CI runner or ``timeout`` sends on cancelling a job): it
is raised as an interrupt, so the staged output and work folders are removed on the way out rather
than left beside the output. Anything unexpected exits 3 (fail closed), never 1, which means "findings".
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from crowguard.errors import CrowguardError, ExitCode
from crowguard.secrets import scrub

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])
_debug = {"on": os.environ.get("CROWGUARD_DEBUG") == "1"}


def set_debug(on: bool) -> None:
    """Turn tracebacks on for this process (the global --debug option)."""
    _debug["on"] = _debug["on"] or on


def is_debug() -> bool:
    """Whether --debug (or CROWGUARD_DEBUG=1) is on: tracebacks and library messages are shown."""
    return _debug["on"]


def stop_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, so that cleanup runs as on Ctrl-C."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def report_error(exc: BaseException) -> int:
    """Print an exception for a person and return its exit code."""
    if isinstance(exc, CrowguardError):
        stderr.print(f"[bold red]error:[/] {_escape(exc.message)}")
        if exc.hint:
            stderr.print(f"[bold]hint:[/] {_escape(exc.hint)}")
        code = int(exc.exit_code)
    elif isinstance(exc, KeyboardInterrupt):
        stderr.print("[bold red]interrupted[/]: nothing was written")
        return int(ExitCode.INTERRUPTED)
    elif isinstance(exc, MemoryError):
        stderr.print("[bold red]error:[/] out of memory")
        stderr.print("[bold]hint:[/] use a smaller batch, --quantize 4bit, or a bigger machine")
        code = int(ExitCode.TOOL_ERROR)
    else:
        stderr.print(f"[bold red]internal error:[/] {type(exc).__name__}: {_escape(str(exc))}")
        stderr.print("[bold]hint:[/] rerun with --debug for the traceback, and report it")
        code = int(ExitCode.TOOL_ERROR)
    if _debug["on"]:
        stderr.print(scrub("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))), markup=False)
    return code


def guarded(fn: F) -> F:
    """Wrap a command: its return value (an exit code or None) and its errors become the exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure must map to an exit code
            if isinstance(exc, SystemExit):
                raise
            raise typer.Exit(report_error(exc)) from None
        raise typer.Exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(scrub(text))
