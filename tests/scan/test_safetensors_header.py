"""Safetensors headers are validated without trust: each malformed variant is a finding, never a crash."""

import json
from pathlib import Path

import pytest

from crowguard.report.model import Severity
from crowguard.scan.files.safetensors_header import MAX_HEADER_BYTES, MAX_METADATA_BYTES
from tests.scan import payloads
from tests.scan.conftest import rules

F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


def _file(header: dict | bytes, data: bytes = b"", **kw: int) -> bytes:
    return payloads.safetensors_bytes(header, data, **kw)


def test_real_safetensors_file_is_clean(tmp_path: Path, scan) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3, 5), "b": torch.ones(5, dtype=torch.bfloat16), "e": torch.zeros(0)},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    payloads.write(tmp_path, "handmade.safetensors", payloads.valid_safetensors())
    stage = scan(tmp_path)
    assert stage.status == "completed" and stage.findings == ()


@pytest.mark.parametrize(("data", "rule"), [
    pytest.param(b"\x10\x00\x00", "CG-SAFETENSORS-TRUNCATED", id="shorter-than-8-bytes"),
    pytest.param(_file({"a": F32_2x2}, bytes(16), length=10_000), "CG-SAFETENSORS-HEADER-BOUNDS",
                 id="header-length-past-end"),
    pytest.param(_file(b"{}", length=MAX_HEADER_BYTES + 1), "CG-SAFETENSORS-HEADER-HUGE", id="huge-header"),
    pytest.param(_file(b'{"a\xff\xfe": 1}'), "CG-SAFETENSORS-HEADER-ENCODING", id="non-utf8-header"),
    pytest.param(_file(b"{not json}"), "CG-SAFETENSORS-HEADER-JSON", id="not-json"),
    pytest.param(_file(b"[1, 2]"), "CG-SAFETENSORS-HEADER-JSON", id="json-array"),
    pytest.param(_file(b'{"a": ' + json.dumps(F32_2x2).encode() + b', "a": '
                       + json.dumps(F32_2x2).encode() + b"}", bytes(16)),
                 "CG-SAFETENSORS-HEADER-JSON", id="duplicate-tensor-name"),
    pytest.param(_file({"__metadata__": {"k": 1}, "a": F32_2x2}, bytes(16)), "CG-SAFETENSORS-METADATA",
                 id="metadata-not-strings"),
    pytest.param(_file({"__metadata__": {"k": "x" * (MAX_METADATA_BYTES + 1)}, "a": F32_2x2}, bytes(16)),
                 "CG-SAFETENSORS-METADATA", id="metadata-oversized"),
    pytest.param(_file({"a": {"dtype": "F32", "shape": [4]}}, bytes(16)), "CG-SAFETENSORS-TENSOR-ENTRY",
                 id="missing-offsets"),
    pytest.param(_file({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, bytes(16)),
                 "CG-SAFETENSORS-TENSOR-ENTRY", id="negative-dim"),
    pytest.param(_file({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, bytes(16)),
                 "CG-SAFETENSORS-TENSOR-ENTRY", id="reversed-offsets"),
    pytest.param(_file({"a": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}}, bytes(16)),
                 "CG-SAFETENSORS-DTYPE", id="unknown-dtype"),
    pytest.param(_file({"a": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 16]}}, bytes(16)),
                 "CG-SAFETENSORS-SIZE-MISMATCH", id="wrong-size"),
    pytest.param(_file({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}}, bytes(1)),
                 "CG-SAFETENSORS-SIZE-MISMATCH", id="sub-byte-dtype-wrong-size"),
    pytest.param(_file({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, bytes(16)),
                 "CG-SAFETENSORS-RANGE", id="range-past-data"),
    pytest.param(_file({"a": F32_2x2, "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}}, bytes(24)),
                 "CG-SAFETENSORS-OVERLAP", id="overlapping-ranges"),
    pytest.param(_file({"a": F32_2x2}, bytes(16) + b"hidden payload"), "CG-SAFETENSORS-UNACCOUNTED",
                 id="trailing-bytes"),
    pytest.param(_file({"a": F32_2x2, "b": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]}}, bytes(24)),
                 "CG-SAFETENSORS-UNACCOUNTED", id="gap-between-tensors"),
])
def test_malformed_variant_is_a_finding(tmp_path: Path, scan, data: bytes, rule: str) -> None:
    payloads.write(tmp_path, "model.safetensors", data)
    stage = scan(tmp_path)
    assert stage.status == "completed", stage.errors
    assert rule in rules(stage, "model.safetensors")
    assert all(f.severity >= Severity.MEDIUM for f in stage.findings if f.rule_id == rule)


def test_header_is_not_read_when_length_is_past_the_end(tmp_path: Path, scan, monkeypatch) -> None:
    """A header length is checked before any read of that size (no huge allocation)."""
    import crowguard.scan.files.safetensors_header as module

    reads: list[int] = []
    real_open = module.open_nofollow

    def spying_open(path):
        handle = real_open(path)
        original = handle.read
        handle.read = lambda n=-1: reads.append(n) or original(n)  # type: ignore[method-assign]
        return handle

    monkeypatch.setattr(module, "open_nofollow", spying_open)
    payloads.write(tmp_path, "model.safetensors", _file(b"{}", length=2**62))
    assert "CG-SAFETENSORS-HEADER-HUGE" in rules(scan(tmp_path))
    assert reads == [8]
