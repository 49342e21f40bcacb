"""Containers around a payload, built in memory: zips (plain, torch-like, ambiguous), tar, NumPy, GGUF,
compression wrappers and safetensors polyglots. Standard library only; nothing is loaded or run.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable

from tests.scan.payloads import safetensors_bytes

WRAPPERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, mtime=0), "bz2": bz2.compress, "xz": lzma.compress, "zlib": zlib.compress}


def fixed_time(name: str) -> zipfile.ZipInfo:
    """A member dated 1980-01-01, so that the same corpus is the same bytes on every run."""
    return zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))


def zip_bytes(members: dict[str, bytes], *, deflate: bool = False, prefix: bytes = b"",
              absolute: bool = True) -> bytes:
    """A zip of ``members`` after ``prefix``; offsets count from the file's start when ``absolute``."""
    buffer = io.BytesIO(prefix if absolute else b"")
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    # mode "a" on bytes that are not a zip appends one whose offsets include the prefix
    with zipfile.ZipFile(buffer, "a" if absolute and prefix else "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(fixed_time(name), data, compress_type=method)
    return buffer.getvalue() if absolute else prefix + buffer.getvalue()


def torch_zip(data_pkl: bytes, *, root: str = "archive", pickle_name: str = "data.pkl",
              deflate: bool = False) -> bytes:
    """The layout ``torch.save`` writes: ``<root>/data.pkl``, ``version``, ``byteorder``, one storage."""
    return zip_bytes({f"{root}/{pickle_name}": data_pkl, f"{root}/byteorder": b"little", f"{root}/version": b"3\n",
                      f"{root}/data/0": bytes(16), f"{root}/.data/serialization_id": b"0123456789"},
                     deflate=deflate)


def torchscript_zip(constants_pkl: bytes) -> bytes:
    """A TorchScript-like archive whose ``constants.pkl`` carries the payload."""
    return zip_bytes({"archive/constants.pkl": constants_pkl, "archive/data.pkl": b"\x80\x02}q\x00.",
                      "archive/code/__torch__.py": b"", "archive/version": b"3\n"})


def rename_in_central_directory(archive: bytes, old: str, new: str) -> bytes:
    """Change one name in the central directory only, so that it and the local header disagree."""
    if len(old) != len(new):
        raise ValueError("names must have the same length")
    cd_offset = struct.unpack("<I", archive[-6:-2])[0]
    head, tail = archive[:cd_offset], archive[cd_offset:]
    return head + tail.replace(old.encode(), new.encode(), 1)


def rename_in_local_header(archive: bytes, old: str, new: str) -> bytes:
    """Change the first local header's name only (the central directory keeps ``old``)."""
    if len(old) != len(new) or not archive.startswith(b"PK\x03\x04"):
        raise ValueError("names must have the same length, and the archive start with a local header")
    name_at = 30
    assert archive[name_at:name_at + len(old)] == old.encode()
    return archive[:name_at] + new.encode() + archive[name_at + len(old):]


def hidden_local_entry(benign: bytes, name: str, data: bytes) -> bytes:
    """A local file header and data placed before ``benign``'s central directory but listed nowhere."""
    cd_offset = struct.unpack("<I", benign[-6:-2])[0]
    raw_name = name.encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, zlib.crc32(data), len(data), len(data),
                        len(raw_name), 0) + raw_name + data
    shifted = benign[:cd_offset] + local
    rest = bytearray(benign[cd_offset:])
    rest[-6:-2] = struct.pack("<I", cd_offset + len(local))  # the central directory moved by len(local)
    return shifted + bytes(rest)


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def legacy_torch_tar(pickle_member: bytes) -> bytes:
    """PyTorch's oldest checkpoint format: a tar of ``sys_info``, ``pickle``, ``tensors``, ``storages``."""
    empty = b"\x80\x02]q\x00."
    return tar_bytes({"sys_info": empty, "pickle": pickle_member, "tensors": empty, "storages": empty})


def npy_object(pickle_stream: bytes, version: int = 1) -> bytes:
    """A ``.npy`` of dtype object: ``numpy.load(..., allow_pickle=True)`` unpickles what follows the header."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    prefix_len = 10 if version == 1 else 12
    pad = 64 - (prefix_len + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text + pickle_stream


def safetensors_then(blob: bytes) -> bytes:
    """A valid safetensors file with ``blob`` after its data area (bytes no tensor accounts for)."""
    return safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)) + blob


def safetensors_zip_polyglot(members: dict[str, bytes]) -> bytes:
    """Valid safetensors and a valid zip at once: the zip is the data area, its offsets absolute."""
    probe = zip_bytes(members)
    header = json.dumps({"__metadata__": {"format": "pt"},
                         "blob": {"dtype": "U8", "shape": [len(probe)], "data_offsets": [0, len(probe)]}}).encode()
    prefix = struct.pack("<Q", len(header)) + header
    polyglot = zip_bytes(members, prefix=prefix)
    assert len(polyglot) == len(prefix) + len(probe)
    return polyglot


# GGUF (version 3): little-endian; strings are u64 length + bytes; value types as in gguf-py.
GGUF_UINT32, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64 = 4, 8, 9, 10


def gguf_string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(kv: list[tuple[str, int, bytes]], *, tensor_count: int = 0, kv_count: int | None = None,
               tensors: bytes = b"", data: bytes = b"") -> bytes:
    """A GGUF from encoded key-values ``(key, type, encoded value)``; counts may lie on purpose."""
    body = b"".join(gguf_string(key) + struct.pack("<I", kind) + value for key, kind, value in kv)
    head = b"GGUF" + struct.pack("<IQQ", 3, tensor_count, len(kv) if kv_count is None else kv_count)
    blob = head + body + tensors
    return blob + bytes(-len(blob) % 32) + data


def gguf_nested_array(depth: int) -> bytes:
    """An array of arrays ``depth`` deep, ending in one uint32."""
    value = struct.pack("<I", GGUF_UINT32) + struct.pack("<Q", 1) + struct.pack("<I", 7)
    for _ in range(depth):
        value = struct.pack("<I", GGUF_ARRAY) + struct.pack("<Q", 1) + value
    return value
