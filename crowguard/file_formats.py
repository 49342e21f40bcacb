"""Tell a file's format by its content, never by its name.

A pickle renamed ``.safetensors`` or ``.txt`` is still a pickle: the format comes from magic bytes
and structure. Only the first bytes (``HEAD_BYTES``) and, for zips, the central directory are read.
Protocol 0 and 1 pickles have no magic bytes; a head that parses as pickle opcodes up to an import
of a dotted Python name (``GLOBAL``, ``INST``) is called a pickle, since loading it would import code.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from io import BytesIO
from typing import BinaryIO

HEAD_BYTES = 64 * 1024
PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle")
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


def sniff(head: bytes, size: int, handle: BinaryIO) -> str:
    """The format of a file whose first bytes are ``head`` (``handle`` is used for zips only)."""
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
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= pickle.HIGHEST_PROTOCOL:
        return "pickle"
    if head.startswith(b"#!"):
        return "script"
    if imports_in_pickle_head(head):
        return "pickle"
    text = _as_text(head, truncated=size > len(head))
    if text is None:
        return "binary"
    return "json" if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[") else "text"


def is_safetensors_head(head: bytes, size: int) -> bool:
    """An 8-byte little-endian header length that fits the file, followed by a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8


def imports_in_pickle_head(head: bytes) -> bool:
    """True when the head parses as pickle opcodes that import a dotted Python name."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pickletools on odd string escapes
            for opcode, arg, _pos in pickletools.genops(BytesIO(head)):
                if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    module, _, name = arg.partition(" ")
                    if _IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(name):
                        return True
                if opcode.name == "STOP":
                    return False
    except Exception:  # noqa: BLE001 - any parse failure means "not a pickle head"
        return False
    return False


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
