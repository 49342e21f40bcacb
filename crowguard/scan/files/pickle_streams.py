"""Find the pickle streams a loader would unpickle, without unpickling anything.

A raw pickle file holds one stream, or several stacked (PyTorch's legacy format: a magic number,
then four more pickles, then raw storage bytes). Archives and wrappers are opened by
``containers``, which hands each member that holds a pickle to ``split_streams``. Streams are
delimited with ``pickletools.genops`` (opcodes only) through a reader that refuses to go past a
size cap, so a hostile length field cannot make the scanner allocate gigabytes. A stream that
stops before its STOP opcode carries the parse error: the scanner turns it into a finding.
"""

from __future__ import annotations

import pickle
import pickletools
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, cast

from crowguard.pickle_prefix import CappedReader, PastCap

MAX_STREAM_BYTES = 256 * 1024 * 1024
MAX_STACKED = 16
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_STREAMS = 5


@dataclass(frozen=True)
class PickleStream:
    """One pickle stream: where it is, its bytes (up to the cap), and why parsing stopped early."""

    member: str | None
    index: int
    data: bytes
    error: str | None
    too_large: bool = False


def split_streams(handle: IO[bytes], *, member: str | None) -> Iterator[PickleStream]:
    """Stacked streams from ``handle``'s position: the first always, later ones while they parse."""
    legacy = False
    for index in range(MAX_STACKED):
        start = handle.tell()
        error, first_arg, too_large = _delimit(handle)
        end = handle.tell()
        handle.seek(start)
        data = handle.read(min(end - start, MAX_STREAM_BYTES))
        handle.seek(end)
        if error and index > 0 and not legacy:
            return  # trailing bytes after the streams a loader reads
        yield PickleStream(member=member, index=index, data=data, error=error, too_large=too_large)
        if error:
            return
        if index == 0:
            legacy = first_arg == TORCH_LEGACY_MAGIC
        if legacy and index + 1 == TORCH_LEGACY_STREAMS or _at_end(handle):
            return


def _at_end(handle: IO[bytes]) -> bool:
    position = handle.tell()
    more = handle.read(1)
    handle.seek(position)
    return not more


def _delimit(handle: IO[bytes]) -> tuple[str | None, object, bool]:
    """Walk one stream's opcodes; leave ``handle`` after STOP (or where parsing failed).

    Returns the parse error (None when the stream ended with STOP), the first opcode's argument
    (to recognise PyTorch's legacy magic number) and whether the size cap stopped the walk.
    """
    reader = CappedReader(handle, MAX_STREAM_BYTES, strict=True)
    first_arg: object = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pickletools on odd string escapes
            for count, (opcode, arg, _pos) in enumerate(pickletools.genops(cast("IO[bytes]", reader))):
                if count == 1:
                    first_arg = arg
                if opcode.name == "STOP":
                    return None, first_arg, False
        return "the stream ends without a STOP opcode", first_arg, False
    except PastCap as exc:
        what = "line" if exc.line else "stream or argument"
        return f"a pickle {what} runs past {MAX_STREAM_BYTES} bytes", first_arg, True
    except (ValueError, pickle.UnpicklingError, EOFError, OverflowError, MemoryError, zipfile.BadZipFile,
            zlib.error) as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}", first_arg, False
