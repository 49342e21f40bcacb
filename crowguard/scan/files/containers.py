"""Every pickle stream a loader could reach in one file, through zips, tars, compressors and .npy files.

``torch.load`` reads zips and (legacy) tars; joblib reads gzip, bz2, xz, lzma and zlib wrappers;
``numpy.load(allow_pickle=True)`` unpickles object arrays in ``.npy`` and ``.npz`` files; any of
them may hold another. So a file is unwrapped, member by member, and every member that parses as
a pickle (by content, see ``crowguard.pickle_prefix``; by name for ``*.pkl``) yields its streams.
Unwrapping is bounded: at most ``MAX_DEPTH`` nested containers, ``MAX_MEMBERS`` members and
``MAX_UNPACKED_BYTES`` decompressed into memory per file. Hitting a bound, a zip whose structure
two readers could read differently (``crowguard.zip_layout``), or a container that cannot be read
is a ``ContainerProblem``, which the scanner reports as a finding: nothing unread is vouched for.
Members that are neither pickles nor containers (raw tensor storage) are not read past their head.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from crowguard.file_formats import (
    COMPRESSED_FORMATS,
    CONTAINER_FORMATS,
    HEAD_BYTES,
    PICKLE_MEMBER_SUFFIXES,
    ZIP_FORMATS,
    sniff,
)
from crowguard.pickle_prefix import is_pickle
from crowguard.scan.files.inventory import open_nofollow
from crowguard.scan.files.pickle_streams import PickleStream, split_streams
from crowguard.scan.interface import InventoryFile
from crowguard.zip_layout import read_layout

MAX_DEPTH = 4
MAX_MEMBERS = 10_000
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_NPY_HEADER = 64 * 1024
_DECOMPRESSORS = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile, "lzma": lzma.LZMAFile}


@dataclass(frozen=True)
class ContainerProblem:
    """A container that could not be examined in full: ``rule`` is the finding's rule id."""

    rule: str
    where: str
    message: str


class _Budget:
    def __init__(self) -> None:
        self.unpacked = 0
        self.members = 0


class _Stop(Exception):
    def __init__(self, problem: ContainerProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def file_streams(file: InventoryFile) -> Iterator[PickleStream | ContainerProblem]:
    """The streams (and problems) of one file of the inventory."""
    with open_nofollow(file.absolute) as raw:
        handle = io.BufferedReader(raw, buffer_size=1024 * 1024)
        kinds = [file.format, *file.also]
        budget = _Budget()
        try:
            if "zip" in file.also:  # a polyglot: examined as the zip it also is
                yield from _zip(handle, file.size, "", 0, budget)
            if file.format in (*CONTAINER_FORMATS, "numpy"):
                yield from _walk(handle, file.size, file.format, "", 0, budget)
            elif "pickle" in kinds or file.format not in ("safetensors", "gguf"):
                handle.seek(0)  # a pickle by content, or a checkpoint name whose content no format explains
                yield from split_streams(handle, member=None)
        except _Stop as stop:
            yield stop.problem


def _walk(handle: IO[bytes], size: int, kind: str, where: str, depth: int,
          budget: _Budget) -> Iterator[PickleStream | ContainerProblem]:
    if depth > MAX_DEPTH:
        raise _Stop(ContainerProblem("CG-CONTAINER-LIMIT", where, f"containers nested more than {MAX_DEPTH} deep"))
    if kind in ZIP_FORMATS:
        yield from _zip(handle, size, where, depth, budget)
    elif kind == "tar":
        yield from _tar(handle, where, depth, budget)
    elif kind in COMPRESSED_FORMATS:
        data = _decompress(handle, kind, where, budget)
        inner = io.BytesIO(data)
        yield from _walk(inner, len(data), sniff(data[:HEAD_BYTES], len(data), inner), f"{where}[{kind}]",
                         depth + 1, budget)
    elif kind == "numpy":
        yield from _npy(handle, where)
    elif kind == "pickle":
        handle.seek(0)
        yield from split_streams(handle, member=where or None)


def _member(handle: IO[bytes], size: int, name: str, where: str, depth: int,
            budget: _Budget) -> Iterator[PickleStream | ContainerProblem]:
    """One archive member: its streams when it parses as a pickle, its contents when it is a container."""
    budget.members += 1
    if budget.members > MAX_MEMBERS:
        raise _Stop(ContainerProblem("CG-CONTAINER-LIMIT", where, f"more than {MAX_MEMBERS} archive members"))
    head = handle.read(HEAD_BYTES)
    handle.seek(0)
    kind = sniff(head, size, io.BytesIO(head)) if head[:4] != b"PK\x03\x04" else "zip"
    if name.lower().endswith(PICKLE_MEMBER_SUFFIXES) or kind == "pickle" or is_pickle(handle):
        yield from split_streams(handle, member=where)  # it parses up to an import or STOP: a loader runs it
    elif kind in (*ZIP_FORMATS, "tar", *COMPRESSED_FORMATS, "numpy"):
        if kind in ZIP_FORMATS or kind == "tar":
            data = _bounded_read(handle, size, where, budget)
            handle = io.BytesIO(data)
        yield from _walk(handle, size, kind, where, depth + 1, budget)


def _zip(handle: IO[bytes], size: int, where: str, depth: int,
         budget: _Budget) -> Iterator[PickleStream | ContainerProblem]:
    layout = read_layout(handle, size)
    for problem in layout.problems:
        yield ContainerProblem("CG-ZIP-AMBIGUOUS", where or "archive", problem)
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if not layout.problems:
            yield ContainerProblem("CG-ZIP-AMBIGUOUS", where or "archive", f"Python's zipfile cannot read it: {exc}")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            label = f"{where}/{info.filename}" if where else info.filename
            try:
                with archive.open(info) as member:
                    yield from _member(member, info.file_size, info.filename, label, depth, budget)
            except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, NotImplementedError,
                    RuntimeError) as exc:
                yield ContainerProblem("CG-CONTAINER-UNREADABLE", label, f"member cannot be read: {str(exc)[:200]}")


def _tar(handle: IO[bytes], where: str, depth: int, budget: _Budget) -> Iterator[PickleStream | ContainerProblem]:
    handle.seek(0)
    try:
        archive = tarfile.open(fileobj=handle, mode="r:")
    except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
        yield ContainerProblem("CG-CONTAINER-UNREADABLE", where or "archive", f"not a readable tar: {exc}")
        return
    with archive:
        try:
            for info in archive:
                if budget.members >= MAX_MEMBERS:
                    raise _Stop(ContainerProblem("CG-CONTAINER-LIMIT", where or "archive",
                                                 f"more than {MAX_MEMBERS} archive members"))
                if not info.isreg():
                    budget.members += 1
                    continue
                member = archive.extractfile(info)
                if member is not None:
                    label = f"{where}/{info.name}" if where else info.name
                    yield from _member(member, info.size, info.name, label, depth, budget)
        except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
            yield ContainerProblem("CG-CONTAINER-UNREADABLE", where or "archive", f"tar cannot be read: {exc}")


def _decompress(handle: IO[bytes], kind: str, where: str, budget: _Budget) -> bytes:
    handle.seek(0)
    allowance = MAX_UNPACKED_BYTES - budget.unpacked
    try:
        if kind == "zlib":
            data = _inflate(handle, allowance + 1)
        elif kind in _DECOMPRESSORS:
            with _DECOMPRESSORS[kind](fileobj=handle) if kind == "gzip" else _DECOMPRESSORS[kind](handle) as stream:
                data = stream.read(allowance + 1)
        else:
            raise _Stop(ContainerProblem("CG-CONTAINER-UNREADABLE", where or "file",
                                         f"{kind} compression: crowguard cannot decompress it to examine it"))
    except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
        raise _Stop(ContainerProblem("CG-CONTAINER-UNREADABLE", where or "file",
                                     f"{kind} stream cannot be decompressed: {str(exc)[:200]}")) from None
    if len(data) > allowance:
        raise _Stop(ContainerProblem("CG-CONTAINER-LIMIT", where or "file", f"decompresses past "
                                     f"{MAX_UNPACKED_BYTES} bytes (a decompression bomb, or too large to vouch for)"))
    budget.unpacked += len(data)
    return data


def _inflate(handle: IO[bytes], limit: int) -> bytes:
    decompressor = zlib.decompressobj()
    out = bytearray()
    while len(out) < limit and not decompressor.eof:
        chunk = decompressor.unconsumed_tail or handle.read(1024 * 1024)
        if not chunk:
            break
        out += decompressor.decompress(chunk, limit - len(out))
    return bytes(out)


def _bounded_read(handle: IO[bytes], size: int, where: str, budget: _Budget) -> bytes:
    if budget.unpacked + size > MAX_UNPACKED_BYTES:
        raise _Stop(ContainerProblem("CG-CONTAINER-LIMIT", where, f"nested archives hold more than "
                                     f"{MAX_UNPACKED_BYTES} bytes"))
    budget.unpacked += size
    return handle.read(size)


def _npy(handle: IO[bytes], where: str) -> Iterator[PickleStream | ContainerProblem]:
    """An object-dtype ``.npy`` stores its array as a pickle after the header: yield that stream."""
    handle.seek(0)
    prefix = handle.read(10)
    major = prefix[6] if len(prefix) > 6 else 0
    width = 2 if major == 1 else 4
    handle.seek(8)
    length = int.from_bytes(handle.read(width), "little")
    if length > MAX_NPY_HEADER:
        yield ContainerProblem("CG-CONTAINER-UNREADABLE", where or "file", f"npy header of {length} bytes")
        return
    try:
        header = ast.literal_eval(handle.read(length).decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError) as exc:
        yield ContainerProblem("CG-CONTAINER-UNREADABLE", where or "file", f"npy header cannot be parsed: {exc}")
        return
    if _has_objects(descr):
        yield from split_streams(handle, member=where or None)


def _has_objects(descr: object) -> bool:
    if isinstance(descr, str):
        return "O" in descr
    if isinstance(descr, (list, tuple)):
        return any(_has_objects(part) for part in descr)
    return True  # a dtype description numpy does not write: treat as able to hold objects
