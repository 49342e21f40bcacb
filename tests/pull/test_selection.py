"""The pull allow-list: what is taken, what is left and why, and what is refused outright."""

from __future__ import annotations

import pytest

from crowguard.errors import UsageError
from crowguard.pull.selection import select_files

MODEL = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
         "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "chat_template.jinja", "README.md"]


def _reasons(selection) -> dict[str, str]:  # noqa: ANN001
    return {s.path: s.reason for s in selection.skipped}


def test_model_files_are_taken_and_everything_else_is_left_with_a_reason() -> None:
    extra = [".gitattributes", "modeling_custom.py", "pytorch_model.bin", "pytorch_model.bin.index.json",
             "model.Q4_K_M.gguf", "original/consolidated.00.pth", "onnx/", "logo.png", "consolidated.safetensors",
             "additional_chat_templates/tool_use.jinja"]
    selection = select_files(MODEL + extra, where="org/model")
    assert set(selection.take) == set(MODEL) | {"additional_chat_templates/tool_use.jinja"}
    reasons = _reasons(selection)
    assert set(reasons) == set(extra) - {"additional_chat_templates/tool_use.jinja"}
    assert "never downloaded or run" in reasons["modeling_custom.py"]
    assert "safetensors weights are present" in reasons["pytorch_model.bin"]
    assert "--gguf" in reasons["model.Q4_K_M.gguf"]
    assert "subfolder" in reasons["original/consolidated.00.pth"] and "subfolder" in reasons["onnx/"]
    assert "duplicate" in reasons["consolidated.safetensors"]


def test_pickle_only_weights_are_refused_by_default_and_taken_when_allowed() -> None:
    names = ["config.json", "pytorch_model.bin", "tokenizer.json", "modeling.py"]
    with pytest.raises(UsageError) as refused:
        select_files(names, where="org/old")
    assert "pytorch_model.bin" in refused.value.message and "allow_pickle" in (refused.value.hint or "")
    allowed = select_files(names, where="org/old", allow_pickle=True)
    assert set(allowed.take) == {"config.json", "pytorch_model.bin", "tokenizer.json"}


@pytest.mark.parametrize(("names", "expected"), [
    (["config.json", "model.gguf"], "--gguf NAME"),
    (["config.json", "flax_model.msgpack"], "no model weights"),
    (["model.safetensors"], "no config.json"),
])
def test_unusable_sources_are_refused_with_the_fix(names: list[str], expected: str) -> None:
    with pytest.raises(UsageError) as refused:
        select_files(names, where="org/x")
    assert expected in refused.value.message + (refused.value.hint or "")


def test_a_named_gguf_is_taken_with_the_model_card_only() -> None:
    names = ["a.Q4_K_M.gguf", "a.Q8_0.gguf", "README.md", "config.json"]
    selection = select_files(names, where="org/gguf", gguf_file="a.Q8_0.gguf")
    assert selection.gguf == "a.Q8_0.gguf" and set(selection.take) == {"a.Q8_0.gguf", "README.md"}
    with pytest.raises(UsageError) as missing:
        select_files(names, where="org/gguf", gguf_file="a.F16.gguf")
    assert "a.Q4_K_M.gguf" in (missing.value.hint or "")
