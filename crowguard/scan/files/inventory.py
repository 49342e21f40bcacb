"""Walk a model folder once: every regular file hashed (sha256, streamed), sized and sniffed.

Links are recorded and never followed; FIFOs, sockets and devices are recorded and never opened.
Files are opened with ``O_NOFOLLOW`` and checked to be regular after opening, so a file swapped
for a link or a FIFO during the scan is not read through. Hashing reads in large chunks into one
pair of reused buffers, with the next chunk read by a helper thread while this one is hashed (both
release the GIL), so a scan of many gigabytes runs at the speed of the disk, not of Python.
``lab.json`` is hashed and sniffed like any other file: nothing in a folder steers the scan.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from queue import Queue

from crowguard.file_formats import HEAD_BYTES, also_formats, sniff
from crowguard.scan.interface import Inventory, InventoryFile, InventoryLink, InventorySpecial, ScannerError

CHUNK_BYTES = 8 * 1024 * 1024
MAX_WORKERS = 4
_SPECIAL_KINDS = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                  (stat.S_ISBLK, "block device"))


def open_nofollow(path: Path) -> io.FileIO:
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


def build_inventory(folder: Path, *, workers: int | None = None) -> tuple[Inventory, tuple[str, ...]]:
    """Inventory ``folder``; return it with one error per file that could not be read.

    Files are hashed by ``workers`` threads at once (default: one per CPU, at most 4), so a model
    in several shards is hashed on several cores.
    """
    links: list[InventoryLink] = []
    specials: list[InventorySpecial] = []
    errors: list[str] = []
    regular: list[tuple[Path, str, int]] = []
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
        else:
            regular.append((Path(entry.path), rel, mode))
    workers = max(1, min(workers or os.cpu_count() or 1, MAX_WORKERS, len(regular) or 1))
    hashers: Queue[StreamHasher] = Queue()
    for _ in range(workers):
        hashers.put(StreamHasher())

    def inspect(item: tuple[Path, str, int]) -> InventoryFile | str:
        hasher = hashers.get()
        try:
            return _inspect_file(*item, hasher)
        except OSError as exc:
            return f"cannot read {item[1]}: {exc.strerror or exc}"
        finally:
            hashers.put(hasher)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="crowguard-hash") as pool:
            results = list(pool.map(inspect, regular))
    finally:
        while not hashers.empty():
            hashers.get().close()
    files = tuple(r for r in results if isinstance(r, InventoryFile))
    errors += [r for r in results if isinstance(r, str)]
    inventory = Inventory(root=folder, files=files, links=tuple(links), specials=tuple(specials))
    return inventory, tuple(errors)


class StreamHasher:
    """sha256 of whole files in ``CHUNK_BYTES`` chunks, reading the next chunk while hashing this one."""

    def __init__(self) -> None:
        self._buffers = (bytearray(CHUNK_BYTES), bytearray(CHUNK_BYTES))
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crowguard-read")

    def close(self) -> None:
        self._reader.shutdown(wait=True)

    def hash(self, handle: io.RawIOBase) -> tuple[str, int, bytes]:
        """Digest, size and first ``HEAD_BYTES`` of what ``handle`` holds from its position on."""
        digest = hashlib.sha256()
        size, head, current = 0, b"", 0
        pending = self._reader.submit(handle.readinto, self._buffers[current])
        try:
            while count := pending.result():
                view = memoryview(self._buffers[current])[:count]
                current ^= 1
                pending = self._reader.submit(handle.readinto, self._buffers[current])
                if size < HEAD_BYTES:
                    head += bytes(view[: HEAD_BYTES - size])
                digest.update(view)
                size += count
        finally:
            wait([pending])  # never close the file under a read still in flight
        return digest.hexdigest(), size, head


def _inspect_file(path: Path, rel: str, mode: int, hasher: StreamHasher) -> InventoryFile:
    with open_nofollow(path) as handle:
        hard_links = os.fstat(handle.fileno()).st_nlink
        sha256, size, head = hasher.hash(handle)
        fmt = sniff(head, size, handle)
        also = also_formats(fmt, head, size, handle)
    return InventoryFile(path=rel, absolute=path, size=size, sha256=sha256, format=fmt, also=also,
                         executable=bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)), hard_links=hard_links)


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
