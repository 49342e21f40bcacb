"""Read a zip archive's structure strictly, refusing anything two zip readers could read differently.

``torch.load`` opens a checkpoint with miniz (``PyTorchFileReader``), which finds the archive by
scanning backwards from the end of the file for the end-of-central-directory (EOCD) record; Python's
``zipfile`` (used by numpy, and by scanners) does the same but also accepts data prepended to the
archive. Where the two could disagree, crowguard does not try to guess which one a loader uses: the
archive is ambiguous, and that is a finding. An archive is accepted only when:

- exactly one EOCD signature sits in the last 64 KiB + 22 bytes, and its comment ends the file;
- the central directory (zip64 records included) ends exactly where the end records begin;
- every central directory entry has a local header at its offset with the same name, method, CRC
  and sizes (or a data descriptor that repeats them), no two entries share a name, none is encrypted,
  and every method is one both readers support (stored or deflate);
- the members, in offset order, start at byte 0 and tile the file up to the central directory:
  no prepended data, no gap where a second local header could hide, no overlap.
Nothing is decompressed here; every length is checked against the file size before it is used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

LOCAL_SIG, CENTRAL_SIG, EOCD_SIG = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG, DESCRIPTOR_SIG = b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08"
TAIL_BYTES = 22 + 0xFFFF
MAX_CENTRAL_BYTES = 64 * 1024 * 1024
MAX_MEMBERS = 100_000
SUPPORTED_METHODS = {0: "stored", 8: "deflate"}
_SATURATED = (0xFFFF, 0xFFFFFFFF)


@dataclass(frozen=True)
class ZipMember:
    """One central directory entry, with where its data starts (from its local header)."""

    name: str
    header_offset: int
    data_offset: int
    compressed_size: int
    size: int
    method: int


@dataclass(frozen=True)
class ZipLayout:
    """The members of an archive, and every reason its structure is ambiguous (empty when it is not)."""

    members: tuple[ZipMember, ...]
    problems: tuple[str, ...]


class _Bad(Exception):
    pass


def end_record_offsets(handle: IO[bytes], size: int) -> list[int]:
    """Offsets of EOCD signatures in the tail that a reader could take for the archive's end.

    A candidate counts when its central directory offset and size fit before it and point at a
    central directory entry (or a zip64 locator precedes it): that is what miniz and zipfile accept.
    """
    start = max(0, size - TAIL_BYTES)
    handle.seek(start)
    tail = handle.read(size - start)
    found = []
    position = tail.rfind(EOCD_SIG)
    while position >= 0:
        record = tail[position: position + 22]
        if len(record) == 22:
            cd_size, cd_offset = struct.unpack("<II", record[12:20])
            zip64 = position >= 20 and tail[position - 20: position - 16] == ZIP64_LOCATOR_SIG
            absolute = start + position
            listed = cd_offset + cd_size <= absolute and _read_at(handle, cd_offset, 4) == CENTRAL_SIG
            shifted = cd_size <= absolute and _read_at(handle, absolute - cd_size, 4) == CENTRAL_SIG  # zipfile's way
            (comment,) = struct.unpack("<H", record[20:22])
            empty = cd_size == 0 and cd_offset <= absolute and absolute + 22 + comment == size
            if zip64 or listed or shifted or empty:
                found.append(absolute)
        position = tail.rfind(EOCD_SIG, 0, position)
    return sorted(found)


def could_be_zip(head: bytes, handle: IO[bytes], size: int) -> bool:
    """True when a zip reader could open this file: torch's check (local header magic at byte 0) or an EOCD."""
    return head.startswith(LOCAL_SIG) or bool(end_record_offsets(handle, size))


def read_layout(handle: IO[bytes], size: int) -> ZipLayout:
    """The archive's members and its structural problems (see the module docstring)."""
    problems: list[str] = []
    ends = end_record_offsets(handle, size)
    if not ends:
        return ZipLayout(members=(), problems=("no end-of-central-directory record a reader would accept",))
    if len(ends) > 1:
        problems.append(f"{len(ends)} end-of-central-directory records (at {ends[:4]}): readers pick different ones")
    try:
        members = _members(handle, size, ends[-1], problems)
    except _Bad as exc:
        return ZipLayout(members=(), problems=(*problems, str(exc)))
    return ZipLayout(members=tuple(members), problems=tuple(problems))


def _members(handle: IO[bytes], size: int, eocd: int, problems: list[str]) -> list[ZipMember]:
    record = _read_at(handle, eocd, 22)
    disk, cd_disk, count_here, count, cd_size, cd_offset, comment = struct.unpack("<HHHHIIH", record[4:22])
    if eocd + 22 + comment != size:
        problems.append(f"{size - eocd - 22 - comment} bytes after the archive comment")
    cd_end = eocd
    if eocd >= 20 and _read_at(handle, eocd - 20, 4) == ZIP64_LOCATOR_SIG:
        (z64_offset,) = struct.unpack("<Q", _read_at(handle, eocd - 12, 8))
        z64 = _read_at(handle, z64_offset, 56)
        if z64[:4] != ZIP64_EOCD_SIG:
            raise _Bad("the zip64 locator points at no zip64 end record")
        record_size, _, _, disk64, cd_disk64, here64, count64, size64, offset64 = struct.unpack("<QHHIIQQQQ", z64[4:56])
        if z64_offset + 12 + record_size != eocd - 20:
            problems.append("bytes between the zip64 end record and its locator")
        for label, small, big in (("entry count", count, count64), ("central directory size", cd_size, size64),
                                  ("central directory offset", cd_offset, offset64)):
            if small not in _SATURATED and small != big:
                problems.append(f"the zip64 and classic end records disagree on the {label} ({big} vs {small})")
        disk, cd_disk, count_here, count, cd_size, cd_offset = disk64, cd_disk64, here64, count64, size64, offset64
        cd_end = z64_offset
    if disk or cd_disk or count_here != count:
        raise _Bad("a multi-disk archive")
    if count > MAX_MEMBERS or cd_size > MAX_CENTRAL_BYTES:
        raise _Bad(f"{count} entries / {cd_size} bytes of central directory: above the caps")
    if cd_offset + cd_size != cd_end and cd_size <= cd_end and _read_at(handle, cd_end - cd_size, 4) == CENTRAL_SIG:
        raise _Bad(f"{cd_end - cd_size - cd_offset} bytes of data before the archive: Python's zipfile reads it "
                   "shifted, torch's reader does not")
    if cd_offset + cd_size != cd_end:
        problems.append(f"the central directory ({cd_offset}+{cd_size}) does not end where the end records start "
                        f"({cd_end})")
    central = _read_at(handle, cd_offset, cd_size)
    members = _central_entries(central, count, problems)
    tiled = _check_locals(handle, size, members, problems)
    if tiled != cd_offset:
        problems.append(f"{cd_offset - tiled} bytes between the last member and the central directory"
                        if tiled < cd_offset else "the last member overlaps the central directory")
    return members


def _central_entries(central: bytes, count: int, problems: list[str]) -> list[ZipMember]:
    members: list[ZipMember] = []
    names: set[str] = set()
    position = 0
    for _ in range(count):
        fixed = central[position: position + 46]
        if len(fixed) < 46 or fixed[:4] != CENTRAL_SIG:
            raise _Bad(f"central directory entry {len(members)} is not where the directory says")
        flags, method = struct.unpack("<HH", fixed[8:12])
        csize, usize, name_len, extra_len, comment_len = struct.unpack("<IIHHH", fixed[20:34])
        (offset,) = struct.unpack("<I", fixed[42:46])
        raw_name = central[position + 46: position + 46 + name_len]
        extra = central[position + 46 + name_len: position + 46 + name_len + extra_len]
        usize, csize, offset = _zip64_values(extra, usize, csize, offset)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        if name in names:
            problems.append(f"two entries named {name!r}: readers keep different ones")
        names.add(name)
        if flags & 0x1:
            problems.append(f"entry {name!r} is encrypted")
        if method not in SUPPORTED_METHODS:
            problems.append(f"entry {name!r} uses compression method {method}, which torch's reader cannot read")
        members.append(ZipMember(name=name, header_offset=offset, data_offset=-1, compressed_size=csize,
                                 size=usize, method=method))
        position += 46 + name_len + extra_len + comment_len
    if position != len(central):
        problems.append(f"{len(central) - position} bytes in the central directory belong to no entry")
    return members


def _check_locals(handle: IO[bytes], size: int, members: list[ZipMember], problems: list[str]) -> int:
    """Compare each local header with its entry, fill in data offsets; return where the tiling ends."""
    expected = 0
    for index, member in sorted(enumerate(members), key=lambda pair: pair[1].header_offset):
        if member.header_offset != expected:
            problems.append(f"{member.header_offset - expected} unlisted bytes before entry {member.name!r}"
                            if member.header_offset > expected else f"entry {member.name!r} overlaps the one before")
        local = _read_at(handle, member.header_offset, 30)
        if local[:4] != LOCAL_SIG:
            raise _Bad(f"entry {member.name!r} has no local header at offset {member.header_offset}")
        flags, method = struct.unpack("<HH", local[6:10])
        crc, csize, usize, name_len, extra_len = struct.unpack("<IIIHH", local[14:30])
        name_bytes = _read_at(handle, member.header_offset + 30, name_len)
        local_name = name_bytes.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        usize, csize, _ = _zip64_values(_read_at(handle, member.header_offset + 30 + name_len, extra_len),
                                        usize, csize, 0)
        if local_name != member.name or method != member.method:
            problems.append(f"entry {member.name!r}: the local header says {local_name!r}, method {method}")
        data_offset = member.header_offset + 30 + name_len + extra_len
        end = data_offset + member.compressed_size
        if end > size:
            raise _Bad(f"entry {member.name!r} runs past the end of the file")
        if flags & 0x8:
            end = _descriptor_end(handle, end, member, problems)
        elif (csize, usize) != (member.compressed_size, member.size):
            problems.append(f"entry {member.name!r}: local and central sizes differ ({csize}/{usize} vs "
                            f"{member.compressed_size}/{member.size})")
        del crc
        members[index] = ZipMember(name=member.name, header_offset=member.header_offset, data_offset=data_offset,
                                   compressed_size=member.compressed_size, size=member.size, method=member.method)
        expected = max(expected, end)
    return expected


def _descriptor_end(handle: IO[bytes], end: int, member: ZipMember, problems: list[str]) -> int:
    raw = _read_at(handle, end, 24, exact=False)
    body = raw[4:] if raw[:4] == DESCRIPTOR_SIG else raw
    skip = len(raw) - len(body)
    for width, fmt in ((8, "<IQQ"), (4, "<III")):
        if len(body) >= 4 + 2 * width:
            _crc, csize, usize = struct.unpack(fmt, body[: 4 + 2 * width])
            if (csize, usize) == (member.compressed_size, member.size):
                return end + skip + 4 + 2 * width
    problems.append(f"entry {member.name!r}: its data descriptor does not repeat the central sizes")
    return end


def _zip64_values(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[position: position + 4])
        if tag == 1:
            fields = extra[position + 4: position + 4 + length]
            values = [struct.unpack("<Q", fields[i: i + 8])[0] for i in range(0, len(fields) - 7, 8)]
            result = []
            for value in (usize, csize, offset):
                result.append(values.pop(0) if value == 0xFFFFFFFF and values else value)
            return result[0], result[1], result[2]
        position += 4 + length
    return usize, csize, offset


def _read_at(handle: IO[bytes], offset: int, length: int, *, exact: bool = True) -> bytes:
    handle.seek(offset)
    data = handle.read(length)
    if exact and len(data) != length:
        raise _Bad(f"a record at offset {offset} runs past the end of the file")
    return data
