"""Hashes and content sniffing of received files (formats are told by bytes, not names)."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from crowguard.pull.files import file_entry, git_blob_sha1, sniff_format


def test_git_blob_id_is_what_git_computes(tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"  # `printf 'hello\n' | git hash-object --stdin`
    path.write_bytes(b"hello\n")
    assert git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"


def _safetensors_bytes() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def _zip_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("model.safetensors", _safetensors_bytes(), "safetensors"),
    ("model.safetensors", pickle.dumps({"a": 1}, protocol=4), "pickle"),  # misnamed: told by content
    ("x.gguf", b"GGUF\x03\x00\x00\x00" + b"\0" * 16, "gguf"),
    ("config.json", b'{"model_type": "llama"}', "json"),
    ("README.md", "# model card \u00e9\n".encode(), "text"),
    ("blob.bin", bytes(range(256)) * 4, "binary"),
])
def test_formats_are_told_by_content(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert sniff_format(path) == expected


def test_zip_archives_holding_pickles_are_zip_pickle(tmp_path: Path) -> None:
    _zip_pickle(tmp_path / "pytorch_model.bin")
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("notes.txt", "hi")
    assert sniff_format(tmp_path / "pytorch_model.bin") == "zip-pickle"
    assert sniff_format(tmp_path / "plain.zip") == "zip"
    entry = file_entry(tmp_path / "plain.zip", "plain.zip")
    assert entry.size == (tmp_path / "plain.zip").stat().st_size and len(entry.sha256) == 64
