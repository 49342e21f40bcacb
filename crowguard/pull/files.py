"""Hashing and content sniffing of received files: sha256, git blob ids, and the format a file really has.

The format is told by the bytes, not the name, so a pickle named ``model.safetensors`` is recorded
as what it is. Nothing here parses a file beyond its first bytes (and a zip's directory).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

from crowguard.report.model import FileEntry

CHUNK = 1 << 20
_JSON_SNIFF_LIMIT = 64 << 20


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
    """safetensors, gguf, pickle, zip-pickle, zip, json, text or binary, judged by content."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(16)
    if head[:4] == b"GGUF":
        return "gguf"
    if len(head) >= 9 and struct.unpack("<Q", head[:8])[0] < size and head[8:9] == b"{":
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip-pickle" if _zip_holds_pickle(path) else "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if size <= _JSON_SNIFF_LIMIT and head.lstrip()[:1] in (b"{", b"["):
        try:
            json.loads(path.read_bytes())
            return "json"
        except (ValueError, UnicodeDecodeError):
            pass
    with path.open("rb") as handle:
        sample = handle.read(CHUNK)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # a multi-byte character cut at the sample's end is still text
            return "binary"
    return "text"


def file_entry(path: Path, relative: str) -> FileEntry:
    """The report's record of one received file."""
    return FileEntry(path=relative, size=path.stat().st_size, sha256=sha256_file(path), format=sniff_format(path))


def _zip_holds_pickle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
