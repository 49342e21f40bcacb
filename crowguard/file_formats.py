"""Tell a file's format by its content, never by its name.

A pickle renamed ``.safetensors`` or ``.txt`` is still a pickle: the format comes from magic bytes
and structure. Only the first bytes (``HEAD_BYTES``), the tail where zip readers look for an archive,
the central directory of zips and, for pickles, their opcodes up to a cap are read. A pickle is told
by parsing (see ``pickle_prefix``), not by a magic byte. Compressed and archived files (gzip, bz2,
xz, lzma, zlib, zstd, lz4, tar) are told by their magic and, where the magic is weak, a trial
decompression; what they hold is examined by the pickle scanner. A file can be two formats at once
(a safetensors file that is also a zip): ``also_formats`` names the others, so that a polyglot is
examined as each of them.
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from typing import BinaryIO

from crowguard.pickle_prefix import is_pickle, starts_with_proto
from crowguard.zip_layout import could_be_zip

HEAD_BYTES = 64 * 1024
PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle")
ZIP_FORMATS = ("zip", "zip-pickle")
COMPRESSED_FORMATS = ("gzip", "bz2", "xz", "lzma", "zlib", "zstd", "lz4")
CONTAINER_FORMATS = (*ZIP_FORMATS, *COMPRESSED_FORMATS, "tar")
_MEDIA = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"%PDF-", "pdf"))
_PICKLE_CHECKED = ("pickle", "empty", "text", "json", "binary", "protobuf")  # sniff already tried to parse them
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def sniff(head: bytes, size: int, handle: BinaryIO) -> str:
    """The format of a file whose first bytes are ``head``; ``handle`` reads zips and pickles further."""
    if size == 0:
        return "empty"
    if is_safetensors_head(head, size):
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(handle)
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"\x93NUMPY"):
        return "numpy"
    native = _native_executable(head)
    if native:
        return native
    packed = compression_of(head)
    if packed:
        return packed
    if size >= 512 and (head[257:262] == b"ustar" or _tar_checksum_matches(head)):
        return "tar"  # torch.load tries tarfile on any file that is not a zip: v7 tars have no magic
    media = next((kind for magic, kind in _MEDIA if head.startswith(magic)), None)
    if media or (head[:4] == b"RIFF" and len(head) >= 12):
        return media or "riff"
    if head.startswith(b"#!"):
        return "script"
    if starts_with_proto(head) or _parses_as_pickle(handle):
        return "pickle"
    text = _as_text(head, truncated=size > len(head))
    if text is None:
        return "protobuf" if is_protobuf(head, truncated=size > len(head)) else "binary"
    return "json" if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[") else "text"


def also_formats(primary: str, head: bytes, size: int, handle: BinaryIO) -> tuple[str, ...]:
    """Formats other than ``primary`` that a loader could also read this file as (a polyglot)."""
    also = []
    if primary not in ZIP_FORMATS and size >= 22 and could_be_zip(head, handle, size):
        also.append("zip")
    if primary not in _PICKLE_CHECKED and _parses_as_pickle(handle):
        also.append("pickle")
    return tuple(also)


def compression_of(head: bytes) -> str | None:
    """The compressor whose stream ``head`` starts (checked by a trial decompression where the magic is weak)."""
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if len(head) >= 2 and head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib" if _trial(zlib.decompressobj(), head) else None
    if len(head) >= 13 and head[0] == 0x5D:  # lzma "alone" (joblib's lzma): default properties byte
        return "lzma" if _trial(lzma.LZMADecompressor(format=lzma.FORMAT_ALONE), head) else None
    return None


def is_protobuf(head: bytes, *, truncated: bool) -> bool:
    """True when ``head`` parses as protobuf wire format throughout (a SentencePiece model, an ONNX graph)."""
    position, fields = 0, 0
    while position < len(head):
        key, position = _varint(head, position)
        if key is None:
            return truncated and fields > 0  # the head ends inside a field's key
        if key >> 3 == 0:
            return False
        wire = key & 7
        if wire == 0:
            _value, position = _varint(head, position)
            if _value is None:
                return truncated and fields > 0
        elif wire in (1, 5):
            position += 8 if wire == 1 else 4
        elif wire == 2:
            length, position = _varint(head, position)
            if length is None:
                return truncated and fields > 0
            position += length
        else:
            return False
        fields += 1
        if position > len(head):
            return truncated and fields > 1
    return fields > 0


def _varint(data: bytes, position: int) -> tuple[int | None, int]:
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(data):
            return None, position
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
    return None, position


def _trial(decompressor: zlib._Decompress | lzma.LZMADecompressor, head: bytes) -> bool:
    try:
        return bool(decompressor.decompress(head[:4096], 64))
    except (zlib.error, lzma.LZMAError, EOFError):
        return False


def _tar_checksum_matches(head: bytes) -> bool:
    field = head[148:156].replace(b"\x00", b" ").strip()
    if len(head) < 512 or not field or any(c not in b"01234567" for c in field):
        return False
    block = head[:148] + b" " * 8 + head[156:512]
    return int(field, 8) in (sum(block), sum(b - 256 if b > 127 else b for b in block))


def _parses_as_pickle(handle: BinaryIO) -> bool:
    """``is_pickle`` from byte 0 through a buffer (the inventory hands an unbuffered file)."""
    handle.seek(0)
    if not isinstance(handle, io.RawIOBase):
        return is_pickle(handle)
    buffered = io.BufferedReader(handle, buffer_size=256 * 1024)
    try:
        return is_pickle(buffered)
    finally:
        buffered.detach()  # leave the caller's file open


def is_safetensors_head(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length that fits the file, followed by a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8


def _zip_kind(handle: BinaryIO) -> str:
    try:
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "zip"
    return "zip-pickle" if any(n.lower().endswith(PICKLE_MEMBER_SUFFIXES) for n in names) else "zip"


def _native_executable(head: bytes) -> str | None:
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(_MACHO):
        return "macho"
    if head.startswith(b"MZ") and len(head) >= 64:
        (pe_offset,) = struct.unpack("<I", head[60:64])
        if head[pe_offset:pe_offset + 4] == b"PE\x00\x00":
            return "pe"
    return None


def _as_text(head: bytes, *, truncated: bool) -> str | None:
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the head is still text.
        if truncated and exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return head[: exc.start].decode("utf-8")
        return None
