"""Malicious and malformed model files, built at test time (never committed).

Building a payload only pickles a reference to a callable; nothing here calls it, and no test
unpickles what it builds.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any


class SystemCall:
    """Unpickling this runs a shell command: the classic model-file payload."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo crowguard-test-payload",))


class ImportIndirection:
    """Unpickling this imports ``os`` through importlib, a way around name-based deny lists."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, ("os",))


# A STACK_GLOBAL whose module name is the result of a call (str('os')): the import is built at load time.
DYNAMIC_IMPORT = (b"\x80\x04\x8c\x08builtins\x94\x8c\x03str\x94\x93\x94\x8c\x02os\x85R\x94"
                  b"\x8c\x06system\x94\x93\x94\x8c\x02id\x85R.")
# Protocol 0: imports mypkg.loader.Thing, known to no allow-list.
UNKNOWN_IMPORT = b"cmypkg.loader\nThing\n)R."


def system_pickle(protocol: int = 4) -> bytes:
    return pickle.dumps(SystemCall(), protocol=protocol)


def truncated_pickle() -> bytes:
    """A state-dict-like pickle cut before its STOP opcode."""
    data = pickle.dumps({"layer.weight": [0.1] * 8, "payload": SystemCall()}, protocol=4)
    return data[: len(data) // 2]


def torch_zip_with_payload(path: Path) -> Path:
    """A real ``torch.save`` checkpoint whose state dict smuggles a payload object."""
    import torch

    torch.save({"weight": torch.zeros(2, 2), "extra": SystemCall()}, path)
    return path


def hand_zip_with_payload(path: Path) -> Path:
    """A PyTorch-style zip written without torch: ``archive/data.pkl`` holds the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", system_pickle(2))
        archive.writestr("archive/version", "3\n")
    return path


def clean_torch_checkpoints(folder: Path) -> list[Path]:
    """A zip and a legacy-format checkpoint of a plain state dict."""
    import torch

    state = {"weight": torch.zeros(3, 2), "bias": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(state, folder / "pytorch_model.bin")
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    return [folder / "pytorch_model.bin", folder / "legacy.pt"]


def safetensors_bytes(header: dict[str, Any] | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw bytes) and a data area; ``length`` overrides the prefix."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def valid_safetensors() -> bytes:
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}
    return safetensors_bytes(header, bytes(22))


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# --- issue 13: formats told by parsing (polyglots, ambiguous zips, wrapped pickles, allow-list) ---

def raw_import_pickle(module: str, name: str, arg: str = "x") -> bytes:
    """Protocol 0: ``module.name(arg)``, written by hand so the test never imports ``module``."""
    return f"c{module}\n{name}\n(S'{arg}'\ntR.".encode()


def pickle_without_proto(protocol: int = 4) -> bytes:
    """A protocol 2+ payload with its PROTO opcode (and frame) removed: still loads, no magic bytes."""
    data = system_pickle(protocol)
    body = data[2:]
    if protocol >= 4 and body[:1] == b"\x95":  # FRAME + 8-byte length
        body = body[9:]
    return body


def pickle_behind_long_string(padding: int = 100_000) -> bytes:
    """Protocol 0: a long string is pushed and popped before the import, past any sniffing window."""
    return b"S'" + b"a" * padding + b"'\np0\n0" + system_pickle(protocol=0)


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def torch_like_zip(payload: bytes | None = None) -> bytes:
    return zip_bytes({"archive/data.pkl": payload or system_pickle(2), "archive/version": b"3\n"})


def safetensors_zip_polyglot() -> bytes:
    """A valid safetensors file whose single U8 tensor is a zip holding a payload ``data.pkl``.

    The zip's end record ends the file, where every zip reader looks for it.
    """
    inner = torch_like_zip()
    header = {"blob": {"dtype": "U8", "shape": [len(inner)], "data_offsets": [0, len(inner)]}}
    return safetensors_bytes(header, inner)


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def legacy_torch_tar() -> bytes:
    """The layout of torch's oldest checkpoints (a tar of sys_info, pickle, storages, tensors)."""
    return tar_bytes({"sys_info": pickle.dumps({"protocol_version": 1001}), "pickle": system_pickle(2),
                      "storages": pickle.dumps(0), "tensors": pickle.dumps(0)})


def compressed(data: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma
    import zlib

    return {"gzip": lambda: gzip.compress(data), "bz2": lambda: bz2.compress(data),
            "xz": lambda: lzma.compress(data), "lzma": lambda: lzma.compress(data, format=lzma.FORMAT_ALONE),
            "zlib": lambda: zlib.compress(data)}[kind]()


def object_npy() -> bytes:
    """``numpy.save`` of an object array holding a payload: ``numpy.load(allow_pickle=True)`` runs it."""
    import numpy as np

    array = np.empty(2, dtype=object)
    array[0], array[1] = SystemCall(), 1
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def protobuf_bytes(pieces: int = 50) -> bytes:
    """Protobuf wire format shaped like a SentencePiece model: repeated length-delimited field 1."""
    out = bytearray()
    for index in range(pieces):
        piece = b"\x0a" + bytes([len(f"tok{index}")]) + f"tok{index}".encode() + b"\x15\x00\x00\x80\xbf"
        out += b"\x0a" + bytes([len(piece)]) + piece
    return bytes(out)


def v7_tar(members: dict[str, bytes]) -> bytes:
    """A tar without the ustar magic (the oldest format): tarfile, and so torch.load, still read it."""
    data = bytearray(tar_bytes(members))
    position = 0
    while position + 512 <= len(data) and any(data[position: position + 512]):
        size = int(data[position + 124: position + 136].rstrip(b"\x00 ") or b"0", 8)
        data[position + 257: position + 265] = bytes(8)
        data[position + 148: position + 156] = b" " * 8
        data[position + 148: position + 156] = b"%06o\x00 " % sum(data[position: position + 512])
        position += 512 + (size + 511) // 512 * 512
    return bytes(data)


def torch_loadable_safetensors_polyglot(path: Path) -> Path:
    """Valid safetensors whose length prefix reads ``PK\\x03\\x04``: ``torch.load`` takes it for a zip.

    The 8-byte header length is 0x04034B50 (its little-endian bytes are the zip local header
    magic, which is all torch checks), so the header is padded to 67 MB; the data area is a zip
    whose offsets are shifted to count from the start of the file, as miniz reads them.
    """
    archive = bytearray(torch_like_zip())
    header_length = 0x04034B50
    shift = 8 + header_length
    position = archive.index(b"PK\x01\x02")
    while archive[position: position + 4] == b"PK\x01\x02":
        (offset,) = struct.unpack_from("<I", archive, position + 42)
        struct.pack_into("<I", archive, position + 42, offset + shift)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", archive, position + 28)
        position += 46 + name_len + extra_len + comment_len
    (cd_offset,) = struct.unpack_from("<I", archive, position + 16)
    struct.pack_into("<I", archive, position + 16, cd_offset + shift)
    header = json.dumps({"blob": {"dtype": "U8", "shape": [len(archive)], "data_offsets": [0, len(archive)]}})
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", header_length) + header.encode().ljust(header_length) + archive)
    return path
