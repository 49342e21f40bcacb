"""GGUF import: a tiny Llama written as GGUF at test time comes back as the same model in safetensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.pull import pull
from tests.pull.gguf_builder import write_tiny_gguf

runner = CliRunner()
# A template that would leak Python internals if rendered unsandboxed: stored verbatim for the file scan.
SUSPICIOUS_TEMPLATE = ("{{ ''.__class__.__mro__[1].__subclasses__() }}"
                       "{% for m in messages %}{{ m['content'] }}{% endfor %}")


def test_gguf_file_becomes_the_same_model_as_safetensors(tmp_path: Path) -> None:
    import torch

    from crowguard.models import load_model

    gguf = tmp_path / "tiny.gguf"
    original = write_tiny_gguf(gguf, chat_template=SUSPICIOUS_TEMPLATE, extra_templates={"tool_use": "{{ tools }}"})
    result = pull(str(gguf), tmp_path / "out")
    out = tmp_path / "out"
    assert result.imported_from_gguf == "tiny.gguf"
    assert [e.path for e in result.source.files] == ["tiny.gguf"] and result.source.files[0].format == "gguf"
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert (out / "chat_template.jinja").read_text() == SUSPICIOUS_TEMPLATE
    assert (out / "additional_chat_templates" / "tool_use.jinja").read_text() == "{{ tools }}"
    assert not list(out.glob("*.gguf")) and gguf.exists()
    loaded = load_model(out, device="cpu")
    ids = torch.tensor([[0, 40, 41, 42, 257]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, original(ids).logits, atol=1e-5)


def test_gguf_missing_a_tensor_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    gguf = tmp_path / "broken.gguf"
    write_tiny_gguf(gguf, drop_tensor="model.layers.1.mlp.down_proj.weight")
    result = runner.invoke(app, ["pull", str(gguf), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "lacks tensors" in result.stderr and "down_proj" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"not a gguf file at all", b"GGUF\x03\x00\x00\x00truncated"])
def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(content)
    result = runner.invoke(app, ["pull", str(fake), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "fake.gguf" in result.stderr and "Traceback" not in result.stderr
