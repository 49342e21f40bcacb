"""Read a GGUF file's header (metadata and tensor table) with bounded memory and work.

The ``gguf`` library's reader maps the whole file and makes one numpy object per array element,
recursing into arrays of arrays without limit: a hostile header of a few bytes can declare 2**63
elements, or nest arrays until Python's stack runs out. This reader streams the header through a
small buffer instead and checks every declared count against what is left of the file before
reading it, so no declaration can make it allocate more than the file holds. It also caps nesting,
element counts, string lengths and the tensor table, and checks that every tensor's data lies
inside the file without overlapping another. Small values are kept; long arrays are kept as their
element type and length only (a vocabulary is not needed to judge a header).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO, TypeAlias

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_KEY_BYTES = 1024
MAX_STRING_BYTES = 16 * 1024 * 1024
MAX_ARRAY_DEPTH = 2  # an array of arrays of scalars; llama.cpp writes nothing deeper
MAX_ARRAY_ITEMS = 1 << 20
MAX_TOTAL_ITEMS = 1 << 21  # real vocabularies: about 0.5M items in all (tokens, types, merges)
MAX_KEPT_ITEMS = 4096
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 17
MAX_DIMS = 4
MAX_TENSOR_ELEMENTS = 1 << 40
DEFAULT_ALIGNMENT = 32

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

class GgufError(ValueError):
    """The header is malformed or declares more than the caps allow; the message says what."""


@dataclass(frozen=True)
class LongArray:
    """An array longer than ``MAX_KEPT_ITEMS``: its element type and length, not its items."""

    item_type: int
    length: int


Value: TypeAlias = "int | float | bool | str | tuple[Value, ...] | LongArray"


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table: GGUF dims (innermost first), GGML type, data offset and size."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.dims:
            count *= dim
        return count


@dataclass(frozen=True)
class GgufHeader:
    """Everything before the tensor data, checked against the file's size."""

    version: int
    metadata: dict[str, Value]
    tensors: tuple[TensorInfo, ...]
    data_offset: int
    file_size: int

    @cached_property
    def _by_name(self) -> dict[str, TensorInfo]:
        return {t.name: t for t in self.tensors}

    def tensor(self, name: str) -> TensorInfo | None:
        """The tensor table's entry called ``name``, if any."""
        return self._by_name.get(name)


def read_gguf_header(path: Path) -> GgufHeader:
    """Parse and check the header of the GGUF file ``path``; GgufError if anything is off."""
    with path.open("rb") as handle:
        return read_gguf_header_from(handle, os.fstat(handle.fileno()).st_size)


def read_gguf_header_from(handle: BinaryIO, size: int) -> GgufHeader:
    """Parse the header from an open binary ``handle`` (at offset 0) of a ``size``-byte file."""
    return _HeaderReader(handle, size).read()


class _HeaderReader:
    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._size = size
        self._pos = 0
        self._items = 0

    def read(self) -> GgufHeader:
        if self._take(4) != GGUF_MAGIC:
            raise GgufError("no GGUF magic at the start")
        version = self._scalar("<I")
        if version & 0xFFFF == 0:
            raise GgufError("big-endian GGUF is not supported")
        if version not in SUPPORTED_VERSIONS:
            raise GgufError(f"GGUF version {version} (supported: {', '.join(map(str, SUPPORTED_VERSIONS))})")
        tensor_count, kv_count = self._scalar("<Q"), self._scalar("<Q")
        if kv_count > MAX_KV or tensor_count > MAX_TENSORS:
            raise GgufError(f"declares {kv_count} metadata keys and {tensor_count} tensors "
                            f"(at most {MAX_KV} and {MAX_TENSORS} are accepted)")
        metadata: dict[str, Value] = {}
        for _ in range(kv_count):
            key = self._string(MAX_KEY_BYTES, "a metadata key")
            if key in metadata:
                raise GgufError(f"metadata key {key!r} is given twice")
            metadata[key] = self._value(self._scalar("<I"), key, depth=0)
        infos = [self._tensor_info() for _ in range(tensor_count)]
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise GgufError(f"general.alignment {alignment!r} is not a power of two")
        data_offset = -(-self._pos // alignment) * alignment
        tensors = tuple(_sized(info, alignment) for info in infos)
        self._check_layout(tensors, data_offset)
        return GgufHeader(version=version, metadata=metadata, tensors=tensors, data_offset=data_offset,
                          file_size=self._size)

    def _value(self, value_type: int, key: str, depth: int) -> Value:
        if value_type in _SCALARS:
            return self._scalar(_SCALARS[value_type])
        if value_type == STRING:
            return self._string(MAX_STRING_BYTES, f"the string {key!r}")
        if value_type != ARRAY:
            raise GgufError(f"metadata {key!r} has unknown value type {value_type}")
        if depth >= MAX_ARRAY_DEPTH:
            raise GgufError(f"metadata {key!r} nests arrays more than {MAX_ARRAY_DEPTH} deep")
        item_type, length = self._scalar("<I"), self._scalar("<Q")
        self._items += length
        if length > MAX_ARRAY_ITEMS or self._items > MAX_TOTAL_ITEMS:
            raise GgufError(f"metadata {key!r} declares an array of {length} items (at most {MAX_ARRAY_ITEMS} "
                            f"per array and {MAX_TOTAL_ITEMS} in all)")
        if item_type in _SCALARS:
            item_size = struct.calcsize(_SCALARS[item_type])
            if length > MAX_KEPT_ITEMS:
                self._skip(length * item_size, f"the array {key!r}")
                return LongArray(item_type, length)
            fmt = "<" + _SCALARS[item_type][1] * length
            return tuple(struct.unpack(fmt, self._take(length * item_size, f"the array {key!r}")))
        if length > MAX_KEPT_ITEMS:  # read through (every length checked), keep nothing
            for _ in range(length):
                self._value(item_type, key, depth + 1)
            return LongArray(item_type, length)
        return tuple(self._value(item_type, key, depth + 1) for _ in range(length))

    def _tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self._string(MAX_KEY_BYTES, "a tensor name")
        n_dims = self._scalar("<I")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GgufError(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} are valid)")
        dims = tuple(self._scalar("<Q") for _ in range(n_dims))
        ggml_type, offset = self._scalar("<I"), self._scalar("<Q")
        elements = 1
        for dim in dims:
            elements *= dim
        if not dims or min(dims) < 1 or elements > MAX_TENSOR_ELEMENTS:
            raise GgufError(f"tensor {name!r} has shape {list(dims)}")
        return name, dims, ggml_type, offset

    def _check_layout(self, tensors: tuple[TensorInfo, ...], data_offset: int) -> None:
        names = set()
        end = data_offset
        for tensor in sorted(tensors, key=lambda t: t.offset):
            if tensor.name in names:
                raise GgufError(f"tensor {tensor.name!r} is listed twice")
            names.add(tensor.name)
            start = data_offset + tensor.offset
            if start < end:
                raise GgufError(f"tensor {tensor.name!r} overlaps the tensor before it")
            end = start + tensor.n_bytes
            if end > self._size:
                raise GgufError(f"tensor {tensor.name!r} declares {tensor.n_bytes} bytes at offset {start}, "
                                f"past the end of the {self._size}-byte file")

    def _scalar(self, fmt: str) -> int:
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _string(self, cap: int, what: str) -> str:
        length = self._scalar("<Q")
        if length > cap:
            raise GgufError(f"{what} declares {length} bytes (at most {cap} are accepted)")
        raw = self._take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GgufError(f"{what} is not UTF-8") from None

    def _take(self, count: int, what: str = "the header") -> bytes:
        if count > self._size - self._pos:
            raise GgufError(f"{what} declares {count} bytes at offset {self._pos}, past the end of the file")
        data = self._handle.read(count)
        if len(data) != count:
            raise GgufError(f"the file ended while reading {what}")
        self._pos += count
        return data

    def _skip(self, count: int, what: str) -> None:
        if count > self._size - self._pos:
            raise GgufError(f"{what} declares {count} bytes at offset {self._pos}, past the end of the file")
        self._handle.seek(count, 1)
        self._pos += count


def _sized(info: tuple[str, tuple[int, ...], int, int], alignment: int) -> TensorInfo:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    name, dims, ggml_type, offset = info
    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise GgufError(f"tensor {name!r} has unknown GGML type {ggml_type}") from None
    if dims[0] % block_size:
        raise GgufError(f"tensor {name!r}: its first dimension {dims[0]} is not a multiple of the "
                        f"type's block of {block_size}")
    if offset % alignment:
        raise GgufError(f"tensor {name!r} starts at offset {offset}, not aligned to {alignment}")
    elements = 1
    for dim in dims:
        elements *= dim
    return TensorInfo(name=name, dims=dims, ggml_type=ggml_type, offset=offset,
                      n_bytes=elements // block_size * type_size)
