"""Which files in a signed folder the signature does not cover, and which of those may stay.

model_signing skips some paths by default (``.git/``, ``.github/``, ``.gitattributes``,
``.gitignore`` at the folder's root) and, when verifying, also every path the signature itself lists
as ignored. A foreign signature can therefore leave any file uncovered. crowguard lists every file
present that the signature does not cover and refuses the folder when one of them is anything but
obviously inert: a loader picks files by name (weights, configs, tokenizer files, templates, code,
pickles, any of them named from a config), and git runs commands named in ``.git/config`` or hooks,
CI runs ``.github/`` workflows. Inert here means git's attribute and ignore lists and plain
documentation (``*.md``, licence and notice files), which no model loader reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from crowguard.errors import IntegrityError, UsageError

INERT_NAMES = frozenset({".gitattributes", ".gitignore", "LICENSE", "LICENSE.txt", "LICENCE", "LICENCE.txt",
                         "NOTICE", "NOTICE.txt", "COPYING", "COPYING.txt"})
INERT_SUFFIXES = (".md",)
ALLOW_FLAG = "--allow-unsigned-extra"


class UnsignedFiles(IntegrityError):
    """Files that the signature does not cover and that a loader or tool could read."""

    def __init__(self, message: str, *, files: tuple[str, ...], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.files = files


def present_files(folder: Path, *, skip: Iterable[Path] = ()) -> tuple[str, ...]:
    """Every non-directory entry under ``folder`` as a POSIX path relative to it; links are not followed."""
    skipped = {_real_entry(Path(p)) for p in skip}
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        real_root = os.path.realpath(root)
        # A link to a folder is listed as an entry, never entered.
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            if os.path.join(real_root, name) not in skipped:
                found.append(PurePosixPath(*Path(os.path.relpath(os.path.join(root, name), folder)).parts).as_posix())
    return tuple(sorted(found))


def _real_entry(path: Path) -> str:
    """The entry itself (never what a link at that name points to), its folder resolved."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def is_inert(name: str) -> bool:
    """True for a file no model loader reads and no tool runs (see the module docstring)."""
    base = PurePosixPath(name).name
    return base in INERT_NAMES or base.endswith(INERT_SUFFIXES)


def uncovered(folder: Path, covered: Iterable[str], *, signature: Path | None) -> tuple[str, ...]:
    """Files present in ``folder`` (the signature file aside) that are not among ``covered``."""
    skip = [signature] if signature is not None else []
    names = set(covered)
    return tuple(n for n in present_files(folder, skip=skip) if n not in names)


def refuse_loadable(folder: Path, names: tuple[str, ...], *, signing: bool) -> None:
    """Raise when any uncovered file is not inert: UsageError before signing, UnsignedFiles when verifying."""
    loadable = tuple(n for n in names if not is_inert(n))
    if not loadable:
        return
    shown = ", ".join(printable(n) for n in loadable[:20]) + (f" and {len(loadable) - 20} more"
                                                              if len(loadable) > 20 else "")
    if signing:
        raise UsageError(f"{folder} holds file(s) an OpenSSF model signature does not cover by default "
                         f"(git metadata) and that a tool could read or run: {shown}",
                         hint=f"remove them before signing (a model folder needs no repository metadata), "
                              f"or pass {ALLOW_FLAG} to sign the rest and leave them unsigned")
    raise UnsignedFiles(f"{folder} holds file(s) its signature does not cover that a loader or tool could "
                        f"read: {shown}", files=loadable,
                        hint=f"do not deploy this folder as it is: delete those files or pull and gate the "
                             f"model again; {ALLOW_FLAG} accepts them (they stay unsigned and listed)")


def printable(name: str) -> str:
    """A file name safe to print: undecodable bytes and control characters escaped."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
