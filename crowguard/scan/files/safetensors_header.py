"""Validate safetensors headers without trusting them, and without reading a tensor.

The header is read only after its 8-byte length is checked against a cap and the file size. Then:
strict UTF-8, JSON without duplicate keys, string-only bounded metadata, known dtypes, shape times
dtype size equal to each byte range, every range inside the data area, no overlaps, and no byte of
the data area left unaccounted (where a payload could hide). Every problem is a finding; a file
that claims ``.safetensors`` but is something else is one too.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.report.model import Finding, Severity
from crowguard.scan.files.inventory import open_nofollow
from crowguard.scan.files.json_files import reject_duplicate_keys
from crowguard.scan.interface import FileScanner, Inventory, InventoryFile, ScanOutcome

if TYPE_CHECKING:
    from crowguard.policy import Policy

MAX_HEADER_BYTES = 100_000_000  # the safetensors library refuses larger headers too
MAX_METADATA_BYTES = 64 * 1024
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_REMEDIATION = ("Do not load this file. Download it again and compare its sha256 with the publisher's, or ask "
                "the publisher for a file written by the safetensors library.")
_TITLES = {
    "CG-SAFETENSORS-TRUNCATED": "safetensors file shorter than its 8-byte header length",
    "CG-SAFETENSORS-HEADER-HUGE": "safetensors header length above the cap",
    "CG-SAFETENSORS-HEADER-BOUNDS": "safetensors header length runs past the end of the file",
    "CG-SAFETENSORS-HEADER-ENCODING": "safetensors header is not UTF-8",
    "CG-SAFETENSORS-HEADER-JSON": "safetensors header is not a valid JSON object",
    "CG-SAFETENSORS-METADATA": "safetensors metadata is not a small string-to-string map",
    "CG-SAFETENSORS-TENSOR-ENTRY": "malformed tensor entry in safetensors header",
    "CG-SAFETENSORS-DTYPE": "unknown tensor dtype in safetensors header",
    "CG-SAFETENSORS-SIZE-MISMATCH": "tensor byte range does not match its shape and dtype",
    "CG-SAFETENSORS-RANGE": "tensor byte range outside the data area",
    "CG-SAFETENSORS-OVERLAP": "tensor byte ranges overlap",
    "CG-SAFETENSORS-UNACCOUNTED": "bytes of the data area belong to no tensor",
}


class SafetensorsHeaderScanner(FileScanner):
    """Every file that is safetensors by content or claims to be by its name."""

    name = "safetensors-header"

    def scan(self, folder: Path, inventory: Inventory, policy: Policy) -> ScanOutcome:
        findings: list[Finding] = []
        errors: list[str] = []
        for file in inventory.files:
            if file.format == "safetensors" or file.path.lower().endswith(".safetensors"):
                try:
                    findings += check_safetensors(file)
                except OSError as exc:
                    errors.append(f"cannot read {file.path}: {exc.strerror or exc}")
        return ScanOutcome(findings=tuple(findings), errors=tuple(errors))


def check_safetensors(file: InventoryFile) -> list[Finding]:
    """All header problems of one file (an empty list for a well-formed file)."""
    with open_nofollow(file.absolute) as handle:
        size = os.fstat(handle.fileno()).st_size
        prefix = handle.read(8)
        if len(prefix) < 8:
            return [_finding("CG-SAFETENSORS-TRUNCATED", file, f"the file has {size} bytes")]
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER_BYTES:
            return [_finding("CG-SAFETENSORS-HEADER-HUGE", file,
                             f"header length {length} bytes, cap {MAX_HEADER_BYTES}", location="offset 0")]
        if length > size - 8:
            return [_finding("CG-SAFETENSORS-HEADER-BOUNDS", file,
                             f"header length {length} bytes but only {size - 8} bytes follow", location="offset 0")]
        raw = handle.read(length)
    return check_header(file, raw, data_len=size - 8 - length)


def check_header(file: InventoryFile, raw: bytes, *, data_len: int) -> list[Finding]:
    """Check a header's bytes against a data area of ``data_len`` bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_finding("CG-SAFETENSORS-HEADER-ENCODING", file, f"invalid UTF-8 at header byte {exc.start}",
                         location=f"offset {8 + exc.start}")]
    try:
        header = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        return [_finding("CG-SAFETENSORS-HEADER-JSON", file, f"header does not parse: {str(exc)[:200]}")]
    if not isinstance(header, dict) or not text.startswith("{"):
        return [_finding("CG-SAFETENSORS-HEADER-JSON", file, "the header must be one JSON object")]
    problems: dict[str, list[str]] = {}
    metadata = header.pop("__metadata__", {})
    _check_metadata(metadata, problems)
    ranges = []
    for name, entry in header.items():
        span = _check_entry(name, entry, data_len, problems)
        if span is not None:
            ranges.append((span[0], span[1], name))
    _check_layout(sorted(ranges), data_len, problems)
    return [_finding(rule, file, _summarise(examples), details={"count": len(examples), "examples": examples[:20]})
            for rule, examples in problems.items()]


def _check_metadata(metadata: Any, problems: dict[str, list[str]]) -> None:
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        problems.setdefault("CG-SAFETENSORS-METADATA", []).append("__metadata__ must map strings to strings")
        return
    size = len(json.dumps(metadata))
    if size > MAX_METADATA_BYTES:
        problems.setdefault("CG-SAFETENSORS-METADATA", []).append(
            f"__metadata__ holds {size} bytes, cap {MAX_METADATA_BYTES}")


def _check_entry(name: str, entry: Any, data_len: int, problems: dict[str, list[str]]) -> tuple[int, int] | None:
    def problem(rule: str, text: str) -> None:
        problems.setdefault(rule, []).append(f"{name[:80]}: {text}")

    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        problem("CG-SAFETENSORS-TENSOR-ENTRY", f"fields must be exactly {sorted(_ENTRY_KEYS)}")
        return None
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(_nonneg_int(d) for d in shape)):
        problem("CG-SAFETENSORS-TENSOR-ENTRY", f"shape {str(shape)[:60]} is not a list of non-negative integers")
        return None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_nonneg_int(o) for o in offsets)
            and offsets[0] <= offsets[1]):
        problem("CG-SAFETENSORS-TENSOR-ENTRY",
                f"data_offsets {str(offsets)[:60]} is not [begin, end] with begin <= end")
        return None
    begin, end = offsets
    if end > data_len:
        problem("CG-SAFETENSORS-RANGE", f"bytes {begin}-{end} but the data area has {data_len} bytes")
        return None
    if dtype not in DTYPE_BITS:
        problem("CG-SAFETENSORS-DTYPE", f"dtype {str(dtype)[:30]!r}")
        return (begin, end)
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != end - begin:
        problem("CG-SAFETENSORS-SIZE-MISMATCH",
                f"{dtype}{shape} needs {bits / 8:g} bytes but the range holds {end - begin}")
    return (begin, end)


def _check_layout(ranges: list[tuple[int, int, str]], data_len: int, problems: dict[str, list[str]]) -> None:
    covered_to = 0
    unaccounted = 0
    previous = ""
    for begin, end, name in ranges:
        if begin < covered_to:
            problems.setdefault("CG-SAFETENSORS-OVERLAP", []).append(
                f"{name[:80]} (bytes {begin}-{end}) overlaps {previous[:80]}")
        elif begin > covered_to:
            unaccounted += begin - covered_to
        if end > covered_to:
            covered_to, previous = end, name
    unaccounted += max(0, data_len - covered_to)
    if unaccounted:
        problems.setdefault("CG-SAFETENSORS-UNACCOUNTED", []).append(
            f"{unaccounted} of {data_len} data bytes are outside every tensor")


def _finding(rule: str, file: InventoryFile, evidence: str, *, location: str | None = None,
             details: dict[str, Any] | None = None) -> Finding:
    return Finding(rule_id=rule, severity=Severity.HIGH, title=_TITLES[rule], file=file.path, location=location,
                   evidence=evidence, remediation=_REMEDIATION, details=details or {})


def _summarise(examples: list[str]) -> str:
    more = f" (and {len(examples) - 3} more)" if len(examples) > 3 else ""
    return "; ".join(examples[:3]) + more


def _nonneg_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
