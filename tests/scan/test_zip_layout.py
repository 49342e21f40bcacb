"""Issue 13.5: zips that two readers could read differently are refused, under every policy."""

import struct
from pathlib import Path

import pytest

from crowguard.report.model import Severity
from crowguard.zip_layout import read_layout
from tests.scan import payloads
from tests.scan.conftest import policy

POLICIES = ("default", "strict", "permissive")
CLEAN_PICKLE = payloads.pickle.dumps({"step": 1}, protocol=2)


def _prepended() -> bytes:
    return b"\x00" * 64 + payloads.torch_like_zip()


def _two_directories() -> bytes:
    """A clean archive, then a second complete archive whose directory lists the payload."""
    return payloads.torch_like_zip(CLEAN_PICKLE) + payloads.torch_like_zip()


def _local_name_differs() -> bytes:
    data = bytearray(payloads.zip_bytes({"archive/data.pkl": payloads.system_pickle(2), "archive/a.bin": b"x"}))
    first = data.index(b"archive/data.pkl")  # the local header's copy (the central one comes later)
    data[first: first + 16] = b"archive/data.pkX"
    return bytes(data)


def _hidden_in_a_gap() -> bytes:
    """A local header with a payload pickle that no central directory entry lists."""
    hidden = payloads.zip_bytes({"archive/data.pkl": payloads.system_pickle(2)})
    hidden_local = hidden[: hidden.index(b"PK\x01\x02")]
    clean = payloads.torch_like_zip(CLEAN_PICKLE)
    cd_at = clean.index(b"PK\x01\x02")
    eocd_at = clean.rindex(b"PK\x05\x06")
    data = bytearray(clean[:cd_at] + hidden_local + clean[cd_at:])
    eocd = eocd_at + len(hidden_local)
    struct.pack_into("<I", data, eocd + 16, cd_at + len(hidden_local))  # the directory moved, offsets fixed
    return bytes(data)


def _overlapping_entries() -> bytes:
    """Two directory entries for the same local header."""
    data = bytearray(payloads.zip_bytes({"archive/data.pkl": CLEAN_PICKLE, "archive/data.pkm": b"x" * 40}))
    entries = [i for i in range(len(data)) if data[i: i + 4] == b"PK\x01\x02"]
    struct.pack_into("<I", data, entries[1] + 42, 0)  # the second entry points at the first local header
    return bytes(data)


def _sizes_disagree() -> bytes:
    data = bytearray(payloads.torch_like_zip())
    struct.pack_into("<I", data, 18, 5)  # the first local header's compressed size
    return bytes(data)


def _trailing_bytes() -> bytes:
    return payloads.torch_like_zip() + b"\x00" * 100


AMBIGUOUS = {"prepended": _prepended, "two-directories": _two_directories, "local-name": _local_name_differs,
             "hidden-gap": _hidden_in_a_gap, "overlap": _overlapping_entries, "sizes": _sizes_disagree,
             "trailing": _trailing_bytes}


@pytest.mark.parametrize("kind", sorted(AMBIGUOUS))
def test_layout_problems_are_named(tmp_path: Path, kind: str) -> None:
    path = payloads.write(tmp_path, "model.pt", AMBIGUOUS[kind]())
    with path.open("rb") as handle:
        assert read_layout(handle, path.stat().st_size).problems, kind


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("kind", sorted(AMBIGUOUS))
def test_ambiguous_zip_fails_every_policy(tmp_path: Path, scan, kind: str, policy_name: str) -> None:
    payloads.write(tmp_path, "model.pt", AMBIGUOUS[kind]())
    stage = scan(tmp_path, policy_name)
    found = {f.rule_id: f.severity for f in stage.findings if f.file == "model.pt"}
    assert found.get("CG-ZIP-AMBIGUOUS") is Severity.CRITICAL, stage.findings
    assert not policy(policy_name).verdict([stage]).passed


def test_clean_archives_have_no_layout_problems(tmp_path: Path) -> None:
    import numpy as np
    import torch

    torch.save({"w": torch.zeros(3, 3)}, tmp_path / "a.pt")
    np.savez(tmp_path / "b.npz", a=np.zeros(3))
    np.savez_compressed(tmp_path / "c.npz", a=np.zeros(3))
    payloads.write(tmp_path, "d.zip", payloads.zip_bytes({"x.txt": b"hello" * 100}, compression=8))
    for path in tmp_path.iterdir():
        with path.open("rb") as handle:
            assert read_layout(handle, path.stat().st_size).problems == (), path.name
