"""Drop the libraries' messages that tell a crowguard user nothing, unless ``--debug`` asks for them.

Each entry names one logger and the start of one message, so that nothing else from that library,
and no error, is hidden. Filters sit on the logger that emits the record, which is the only place a
filter sees it; they ask ``is_debug`` at the time of each record, since ``--debug`` is parsed after
they are installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

# (logger, message prefix, why it says nothing to a user)
NOISE: tuple[tuple[str, str, str], ...] = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community",
     "bitsandbytes on an AVX-512 BF16 CPU: an optional faster 4-bit kernel from the `kernels` package; "
     "the built-in one is used"),
)


class _DropNoise(logging.Filter):
    def __init__(self, prefix: str, is_debug: Callable[[], bool]) -> None:
        super().__init__()
        self.prefix = prefix
        self.is_debug = is_debug

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or self.is_debug():
            return True
        return not str(record.msg).startswith(self.prefix)


def quiet_libraries(is_debug: Callable[[], bool]) -> None:
    """Install the filters once per process (idempotent)."""
    for name, prefix, _why in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNoise(prefix, is_debug))
