"""Outputs that appear whole or not at all.

Every command that writes a model folder or report builds it in a hidden temporary folder beside
the destination and renames it into place only when complete, so an interrupted or failed run
never leaves anything that looks finished, and an existing output is replaced only with ``force``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crowguard.errors import ToolError, UsageError


def check_output_dir(out: Path, *, force: bool) -> None:
    """Refuse an existing non-empty output folder unless ``force`` (checked before long work)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path {out} exists and is not a folder", hint="choose another --out path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"output folder {out} exists and is not empty",
                         hint="choose another --out, or pass --force to replace it")


@contextmanager
def staged_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out``, else it is removed."""
    out = Path(out).absolute()
    check_output_dir(out, force=force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise ToolError(f"cannot create a folder beside {out}: {exc.strerror}",
                        hint="check that the parent folder is writable") from None
    try:
        yield tmp
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
