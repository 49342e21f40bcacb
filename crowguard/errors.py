"""The one exception hierarchy of crowguard, and the exit codes it maps to.

Every error a user can meet is a ``CrowguardError`` with a short message and a hint that says
how to fix it. The CLI turns each into its exit code; nothing else decides exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, the same for every command and output format."""

    PASS = 0
    POLICY_FAILED = 1
    USAGE = 2
    TOOL_ERROR = 3
    INTEGRITY = 4
    INTERRUPTED = 130


class CrowguardError(Exception):
    """Base class: a message, a hint for the fix, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.TOOL_ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(CrowguardError):
    """The user asked for something that cannot work as asked (bad path, bad option)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A policy or data file is malformed or holds a value out of range."""


class ModelFolderError(UsageError):
    """A model folder cannot be opened safely (no config, no safetensors, unknown architecture)."""


class ToolError(CrowguardError):
    """crowguard could not finish (I/O, out of memory, a library failure): fail closed."""

    exit_code = ExitCode.TOOL_ERROR


class IntegrityError(CrowguardError):
    """A checksum or signature does not match: the bytes are not what they claim to be."""

    exit_code = ExitCode.INTEGRITY


def first_line(exc: BaseException) -> str:
    """A library exception's message, first line only (or its type's name when it has none), for our messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
