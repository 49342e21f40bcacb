"""Where a command's models run: one ``Runtime`` (device, CPU threads, dtype) per request.

Every stage that loads a model (behavioural scan, evaluation, sanitizing) takes the request's one
runtime, so a device or thread count is given once and cannot disagree between stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crowguard.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    """``device``: auto, cpu, cuda or cuda:N; ``threads``: torch CPU threads (None: torch's default);
    ``dtype``: the dtype models are loaded in for scanning and evaluation (sanitizing picks its own)."""

    device: str = "auto"
    threads: int | None = None
    dtype: str = "auto"

    def __post_init__(self) -> None:  # device and dtype names are checked where they are resolved
        if self.threads is not None and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                         or self.threads < 1):
            raise ConfigError(f"runtime option threads={self.threads!r} is invalid; expected an integer >= 1",
                              hint="pass --threads N with N >= 1, or leave it unset")

    def settings(self) -> dict[str, Any]:
        """JSON-able form for a report's settings."""
        return {"device": self.device, "threads": self.threads, "dtype": self.dtype}
