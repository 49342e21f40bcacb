"""Nothing outside a model folder is read: where a path in the folder really leads, and the links that leave.

A path inside a model folder may be a symbolic link (or pass through a linked subfolder) to any
file on the machine. Every place that reads a model folder by name (the local pull, the loader)
resolves the path first and refuses one that leads outside the folder. The one other place a link
may lead is the folder's own blob store when the folder is a Hugging Face cache snapshot
(``models--ORG--NAME/snapshots/REV/``, whose files are links into ``models--ORG--NAME/blobs/``).
"""

from __future__ import annotations

import os
from pathlib import Path


def allowed_roots(folder: Path) -> tuple[Path, ...]:
    """The folder's real path, plus its blob store when it is a Hugging Face cache snapshot."""
    real = Path(os.path.realpath(folder))
    if real.parent.name == "snapshots" and (real.parent.parent / "blobs").is_dir():
        return real, real.parent.parent / "blobs"
    return (real,)


def resolved_inside(folder: Path, name: str, roots: tuple[Path, ...] | None = None) -> Path | None:
    """Where ``folder/name`` resolves to, or None when that is outside ``roots`` (default: the folder's)."""
    resolved = Path(os.path.realpath(folder / name))
    return resolved if any(root in resolved.parents for root in roots or allowed_roots(folder)) else None


def links_leading_out(folder: Path) -> list[tuple[str, str]]:
    """``(relative path, where it leads)`` for every link below ``folder`` that resolves outside it.

    Linked subfolders are checked, not entered. A dangling link leads nowhere and is not listed (no
    read can go through it); the file scan reports it.
    """
    roots = allowed_roots(folder)
    found = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(current) / name
            if path.is_symlink() and path.exists():
                rel = str(path.relative_to(folder))
                if resolved_inside(folder, rel, roots) is None:
                    found.append((rel, os.path.realpath(path)))
    return found
