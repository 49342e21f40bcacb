"""Hostile GGUF headers: each is a clear exit 2 naming the file and the problem, found before any
model is built, with memory bounded by the file (no 7B default model, no RecursionError)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.errors import ModelFolderError
from crowguard.pull.gguf_checks import checked_header
from tests.pull import gguf_hostile as g
from tests.pull.gguf_builder import write_tiny_gguf

runner = CliRunner()
ARCH = g.kv_string("general.architecture", "llama")

HOSTILE_HEADERS = {
    "only the architecture": (g.only_architecture(), ["llama.block_count is missing", "tokenizer.ggml.tokens"]),
    "unknown architecture": (g.only_architecture("evilnet"), ["'evilnet'", "does not import"]),
    "arrays nested 5000 deep": (g.header([ARCH, g.nested_array("x.nested", 5000)]), ["nests arrays"]),
    "array of 2**62 items": (g.header([ARCH, g.gguf_string("x.a") + struct.pack("<IIQ", g.ARRAY, 0, 1 << 62)]),
                             ["array of 4611686018427387904 items"]),
    "string longer than the file": (g.header([ARCH, g.gguf_string("x.s") + struct.pack("<I", g.STRING)
                                              + g.gguf_string(b"abc", declared=1 << 40)]), ["declares"]),
    "2**40 tensors declared": (g.header([ARCH], tensor_count=1 << 40), ["tensors"]),
    "2**40 keys declared": (g.header([ARCH], kv_count=1 << 40), ["metadata keys"]),
    "tensor past the end": (g.header([ARCH], tensors=[g.tensor_info("token_embd.weight", (4096, 32000))]),
                            ["past the end"]),
    "tensor of 2**60 elements": (g.header([ARCH], tensors=[g.tensor_info("w", (1 << 30, 1 << 30))]), ["shape"]),
    "unknown tensor type": (g.header([ARCH], tensors=[g.tensor_info("w", (32,), ggml_type=999)]), ["GGML type"]),
    "block count out of range": (g.header([ARCH, g.kv_uint32("llama.block_count", 1 << 30)]),
                                 ["llama.block_count is 1073741824"]),
    "duplicate key": (g.header([ARCH, ARCH]), ["given twice"]),
    "a million experts' worth of modules": (g.header([ARCH, g.kv_uint32("llama.block_count", 512),
                                                      g.kv_uint32("llama.expert_count", 1024)]),
                                            ["1024 experts in each of 512 blocks"]),
    "7B hyperparameters, no tensors": (g.llama_7b_without_tensors(),
                                       ["lacks tensors the model needs (33", "token_embd.weight", "blk.0.*"]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_gguf_pull_is_exit_2_naming_file_and_problem(tmp_path: Path, case: str) -> None:
    data, needles = HOSTILE_HEADERS[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    result = runner.invoke(app, ["pull", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert "hostile.gguf" in result.stderr and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr
    assert not (tmp_path / "out").exists()


def test_metadata_that_disagrees_with_the_tensor_shapes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lying.gguf"
    write_tiny_gguf(path)
    path.write_bytes(g.patch_uint32(path.read_bytes(), "llama.feed_forward_length", 128))  # the file holds 84
    result = runner.invoke(app, ["pull", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.stderr
    assert "lying.gguf" in result.stderr and "wrong shape" in result.stderr and "ffn_" in result.stderr


def test_a_real_header_reads_back_bounded(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, extra_templates={"tool_use": "{{ tools }}"})
    header = checked_header(path)
    assert header.metadata["llama.block_count"] == 2 and header.metadata["tokenizer.chat_template.tool_use"]
    assert header.tensor("token_embd.weight").dims == (32, 260)
    assert header.data_offset + sum(t.n_bytes for t in header.tensors) <= header.file_size


def test_truncating_a_real_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    write_tiny_gguf(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFolderError, match="cut.gguf.*past the end"):
        checked_header(path)
