"""Walk a model folder once: every regular file hashed (sha256, streamed), sized and sniffed.

Links are recorded and never followed; FIFOs, sockets and devices are recorded and never opened.
Files are opened with ``O_NOFOLLOW`` and checked to be regular after opening, so a file swapped
for a link or a FIFO during the scan is not read through. Hashing reads in large chunks into one
reused buffer, so a scan of many gigabytes runs at the speed of the disk, not of Python.
``lab.json`` at the root (the lab's answer key) is never read: it is listed as skipped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from crowguard.report.model import SkippedFile
from crowguard.scan.files.sniff import HEAD_BYTES, sniff
from crowguard.scan.interface import Inventory, InventoryFile, InventoryLink, InventorySpecial, ScannerError

CHUNK_BYTES = 8 * 1024 * 1024
LAB_ANSWER_KEY = "lab.json"
_SPECIAL_KINDS = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"))


def open_nofollow(path: Path) -> BinaryIO:
    """Open a regular file for reading without following a link at its last component."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def build_inventory(folder: Path) -> tuple[Inventory, tuple[str, ...]]:
    """Inventory ``folder``; return it with one error per file that could not be read."""
    files: list[InventoryFile] = []
    links: list[InventoryLink] = []
    specials: list[InventorySpecial] = []
    skipped: list[SkippedFile] = []
    errors: list[str] = []
    buffer = bytearray(CHUNK_BYTES)
    for entry, rel in _walk(folder, errors):
        if entry.is_symlink():
            links.append(InventoryLink(path=rel, target=_readlink(entry.path)))
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            errors.append(f"cannot stat {rel}: {exc.strerror}")
            continue
        if not stat.S_ISREG(mode):
            specials.append(InventorySpecial(path=rel, kind=_special_kind(mode)))
        elif rel == LAB_ANSWER_KEY:
            skipped.append(SkippedFile(path=rel, reason="the lab's answer key: never read by the scan"))
        else:
            try:
                files.append(_inspect_file(Path(entry.path), rel, mode, buffer))
            except OSError as exc:
                errors.append(f"cannot read {rel}: {exc.strerror or exc}")
    inventory = Inventory(root=folder, files=tuple(files), links=tuple(links), specials=tuple(specials),
                          skipped=tuple(skipped))
    return inventory, tuple(errors)


def hash_file(path: Path, buffer: bytearray | None = None) -> tuple[str, int, bytes, BinaryIO]:
    """Stream ``path`` through sha256; return digest, size, head and the still-open handle."""
    buffer = buffer if buffer is not None else bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    size = 0
    head = b""
    handle = open_nofollow(path)
    try:
        while True:
            count = handle.readinto(view)
            if not count:
                break
            if size < HEAD_BYTES:
                head += bytes(view[: min(count, HEAD_BYTES - size)])
            digest.update(view[:count])
            size += count
    except BaseException:
        handle.close()
        raise
    return digest.hexdigest(), size, head, handle


def _inspect_file(path: Path, rel: str, mode: int, buffer: bytearray) -> InventoryFile:
    sha256, size, head, handle = hash_file(path, buffer)
    with handle:
        fmt = sniff(head, size, handle)
    return InventoryFile(path=rel, absolute=path, size=size, sha256=sha256, format=fmt,
                         executable=bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)))


def _walk(folder: Path, errors: list[str]) -> Iterator[tuple[os.DirEntry[str], str]]:
    """Every entry below ``folder`` (sorted, depth first) without entering linked folders."""
    stack = [(folder, "")]
    while stack:
        current, prefix = stack.pop()
        try:
            with os.scandir(current) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if not prefix:
                raise ScannerError(f"cannot list {folder}: {exc.strerror}") from None
            errors.append(f"cannot list {prefix.rstrip('/')}: {exc.strerror}")
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                subfolders.append((Path(entry.path), rel + "/"))
            else:
                yield entry, rel
        stack.extend(reversed(subfolders))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _special_kind(mode: int) -> str:
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), "special file")
