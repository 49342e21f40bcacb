"""Hashing and content sniffing of received files: sha256, git blob ids, and the format a file really has.

The format is told by the bytes, not the name, so a pickle named ``model.safetensors`` is recorded
as what it is. Format sniffing is shared with the file scan (``crowguard.file_formats``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from crowguard.file_formats import HEAD_BYTES, sniff
from crowguard.report.model import FileEntry

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file (what the hub publishes as ``blobId`` for non-LFS files)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's id, not a security hash
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(path: Path) -> str:
    """The format judged by content (see crowguard.file_formats), never by the file's name."""
    with path.open("rb") as handle:
        return sniff(handle.read(HEAD_BYTES), path.stat().st_size, handle)


def file_entry(path: Path, relative: str) -> FileEntry:
    """The report's record of one received file."""
    return FileEntry(path=relative, size=path.stat().st_size, sha256=sha256_file(path), format=sniff_format(path))
