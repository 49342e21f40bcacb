"""Write pickle byte streams opcode by opcode, at any protocol, for any import: never by pickling objects.

``pickle.dumps`` checks that what it imports exists and refuses dotted names below protocol 4;
hostile pickles need neither. Here a call is a tree (``Call(Global("os", "system"), ("id",))``)
turned into the opcodes a loader would run. Nothing here imports the modules named or unpickles
the result; the streams are only parsed (``pickletools``) by the tests that check them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Global:
    """An import: ``GLOBAL`` (protocols 0-3) or ``STACK_GLOBAL`` (4-5)."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """``func(*args)``, built with ``REDUCE`` (or ``INST``/``OBJ`` where asked)."""

    func: Global | Call
    args: tuple[Value, ...] = ()


Value = Union[str, int, bool, None, bytes, Global, Call, tuple]  # noqa: UP007 - used at run time


class PickleWriter:
    """Opcodes for one protocol; ``call_opcode`` is ``reduce``, ``inst`` (protocol 0-1) or ``obj``."""

    def __init__(self, protocol: int, *, call_opcode: str = "reduce", stack_global: bool | None = None) -> None:
        self.protocol = protocol
        self.call_opcode = call_opcode
        self.stack_global = protocol >= 4 if stack_global is None else stack_global

    def dumps(self, value: Value, *, proto_opcode: bool = True, frame: bool = False) -> bytes:
        """A whole stream: optional ``PROTO`` and ``FRAME``, the value, ``STOP``."""
        body = self.value(value) + b"."
        head = b"\x80" + bytes([self.protocol]) if proto_opcode and self.protocol >= 2 else b""
        if frame and self.protocol >= 4:
            head += b"\x95" + struct.pack("<Q", len(body))
        return head + body

    def value(self, value: Value) -> bytes:
        if isinstance(value, bool):
            return (b"\x88" if value else b"\x89") if self.protocol >= 2 else (b"I01\n" if value else b"I00\n")
        if value is None:
            return b"N"
        if isinstance(value, int):
            return b"I%d\n" % value if self.protocol == 0 else b"J" + struct.pack("<i", value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, bytes):
            return self.binary(value)
        if isinstance(value, tuple):
            return self.tuple(value)
        if isinstance(value, Global):
            return self.global_(value)
        return self.call(value)

    def string(self, text: str) -> bytes:
        if self.protocol == 0:
            escaped = text.replace("\\", "\\u005c").replace("\n", "\\u000a")
            return b"V" + escaped.encode("raw-unicode-escape") + b"\n"
        raw = text.encode("utf-8")
        if self.protocol >= 4 and len(raw) < 256:
            return b"\x8c" + bytes([len(raw)]) + raw
        return b"X" + struct.pack("<I", len(raw)) + raw

    def binary(self, data: bytes) -> bytes:
        if self.protocol < 3:
            raise ValueError("bytes need protocol 3 or later")
        return (b"C" + bytes([len(data)]) if len(data) < 256 else b"B" + struct.pack("<I", len(data))) + data

    def tuple(self, items: tuple[Value, ...]) -> bytes:
        inner = b"".join(self.value(item) for item in items)
        if self.protocol >= 2 and len(items) <= 3:
            return inner + (b")", b"\x85", b"\x86", b"\x87")[len(items)]
        if self.protocol >= 1 and not items:
            return b")"
        return b"(" + inner + b"t"

    def global_(self, ref: Global) -> bytes:
        if self.stack_global:
            return self.string(ref.module) + self.string(ref.name) + b"\x93"
        return b"c" + ref.module.encode() + b"\n" + ref.name.encode() + b"\n"

    def call(self, call: Call) -> bytes:
        if self.call_opcode == "inst" and isinstance(call.func, Global):
            args = b"".join(self.value(a) for a in call.args)
            return b"(" + args + b"i" + call.func.module.encode() + b"\n" + call.func.name.encode() + b"\n"
        if self.call_opcode == "obj":
            return b"(" + self.value(call.func) + b"".join(self.value(a) for a in call.args) + b"o"
        return self.value(call.func) + self.tuple(call.args) + b"R"


def dumps(value: Value, protocol: int, **options: object) -> bytes:
    """``PickleWriter(protocol).dumps(value)``; ``options`` split between the two."""
    writer_keys = {"call_opcode", "stack_global"}
    writer = PickleWriter(protocol, **{k: v for k, v in options.items() if k in writer_keys})  # type: ignore[arg-type]
    return writer.dumps(value, **{k: v for k, v in options.items() if k not in writer_keys})  # type: ignore[arg-type]
