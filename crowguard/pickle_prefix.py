"""Is this a pickle? Decided by parsing, as ``pickle.load`` would, never by a prefix byte.

A pickle needs no magic bytes: protocols 0 and 1 have none, and a protocol 2+ stream loads without
its PROTO opcode. So a byte stream is called a pickle when, from its first byte, its opcodes parse
(``pickletools.genops``) and keep a consistent stack (the unpickler's own underflow, mark and memo
rules, simulated without building any object) until either STOP or an opcode that imports code
(GLOBAL, INST, STACK_GLOBAL). By then ``pickle.load`` has either returned or already imported
something, so whatever follows cannot make the file harmless. A valid prefix that runs past the
parse cap is called a pickle too (fail closed): a protocol-0 pickle may hide its import behind a
long leading string. EXT1/2/4 import only names a process registered with ``copyreg`` (none by
default), so they are parsed as pushes. Text almost never survives: a few letters in, it breaks a stack or memo rule.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
from typing import IO, cast

SNIFF_CAP_BYTES = 16 * 1024 * 1024
IMPORT_OPCODES = frozenset({"GLOBAL", "INST", "STACK_GLOBAL"})
_IDENTIFIER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_MARK = object()


class PastCap(Exception):
    """A read would pass a ``CappedReader``'s cap; ``line`` says it was a text line (protocol 0 argument)."""

    def __init__(self, *, line: bool) -> None:
        super().__init__("a line runs past the cap" if line else "a read runs past the cap")
        self.line = line


class CappedReader(io.RawIOBase):
    """A read-only view of ``handle`` from its position that raises ``PastCap`` rather than read past ``cap`` bytes.

    ``strict``: any read reaching past the cap raises, even where the handle would end first (a
    length field asking for more than the cap leaves is itself the finding). Not strict: such a read
    raises only when bytes do lie beyond the cap, and otherwise returns what is left, so that the
    parser sees the stream end. ``pickletools.genops`` reads through ``read``, ``readline`` and ``tell``.
    """

    def __init__(self, handle: IO[bytes], cap: int, *, strict: bool) -> None:
        self._handle = handle
        self._limit = handle.tell() + cap
        self._strict = strict

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        remaining = self._limit - self._handle.tell()
        if size is not None and 0 <= size <= remaining:
            return self._handle.read(size)
        if self._strict and (size is None or size < 0):
            return self._handle.read(remaining)
        self._overrun(line=False)
        return self._handle.read(remaining)  # the stream ends first: the parser sees it end

    def readline(self, size: int | None = -1) -> bytes:
        line = self._handle.readline(max(1, self._limit - self._handle.tell()))
        if not line.endswith(b"\n") and self._handle.tell() >= self._limit:
            self._overrun(line=True)
        return line

    def tell(self) -> int:
        return self._handle.tell()

    def _overrun(self, *, line: bool) -> None:
        if self._strict or self._continues_past_cap():
            raise PastCap(line=line)

    def _continues_past_cap(self) -> bool:
        """True when the stream holds bytes beyond the cap (a long argument, not one past the end)."""
        position = self._handle.tell()
        self._handle.seek(self._limit)
        more = self._handle.read(1)
        self._handle.seek(position)
        return bool(more)


def is_pickle(handle: IO[bytes], cap: int = SNIFF_CAP_BYTES) -> bool:
    """True when the bytes from ``handle``'s position load as a pickle (see the module docstring).

    The position of ``handle`` is restored.
    """
    start = handle.tell()
    try:
        return _valid_prefix(CappedReader(handle, cap, strict=False))
    except PastCap:
        return True
    finally:
        handle.seek(start)


def is_pickle_bytes(data: bytes) -> bool:
    """``is_pickle`` over bytes held in memory."""
    return is_pickle(io.BytesIO(data))


def starts_with_proto(head: bytes) -> bool:
    """A PROTO opcode at byte 0: what ``pickle.dumps`` writes for protocol 2 and above."""
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= pickle.HIGHEST_PROTOCOL


def _valid_prefix(reader: CappedReader) -> bool:
    stack: list[object] = []
    memo: set[object] = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pickletools on odd string escapes
            for opcode, arg, _pos in pickletools.genops(cast("IO[bytes]", reader)):
                name = opcode.name
                if name == "STOP":
                    return bool(stack) and stack[-1] is not _MARK
                if name in ("GLOBAL", "INST"):
                    module, _, attribute = str(arg).partition(" ")
                    return bool(_IDENTIFIER_PATH.match(module) and _IDENTIFIER_PATH.match(attribute)) and (
                        name == "GLOBAL" or _MARK in stack)
                if name in IMPORT_OPCODES:
                    return _pop(stack, len(opcode.stack_before))
                if not _step(name, opcode, arg, stack, memo):
                    return False
    except PastCap:
        raise
    except Exception:  # noqa: BLE001 - any parse failure means "pickle.load would stop here, having run nothing"
        return False
    return False  # the stream ended without STOP: nothing was imported


def _step(name: str, opcode: pickletools.OpcodeInfo, arg: object, stack: list[object], memo: set[object]) -> bool:
    """Apply one non-import opcode to the simulated stack; False where the unpickler would fail."""
    if name in _MEMO_PUTS or name == "MEMOIZE":
        if not stack or stack[-1] is _MARK:
            return False
        memo.add(len(memo) if name == "MEMOIZE" else arg)
        return True
    if name in _MEMO_GETS:
        if arg not in memo:
            return False
        stack.append(None)
        return True
    before = opcode.stack_before
    if pickletools.markobject in before:
        if _MARK not in stack:
            return False
        while stack.pop() is not _MARK:
            pass
        if not _pop(stack, before.index(pickletools.markobject)):
            return False
    elif not _pop(stack, len(before)):
        return False
    for item in opcode.stack_after:
        stack.append(_MARK if item is pickletools.markobject else None)
    return True


def _pop(stack: list[object], count: int) -> bool:
    """Pop ``count`` objects, never across a mark (the unpickler's underflow rule)."""
    for _ in range(count):
        if not stack or stack[-1] is _MARK:
            return False
        stack.pop()
    return True
