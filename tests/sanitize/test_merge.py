"""Merging: the saved model computes what the trained adapter computed, and 4.x can read its config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crowguard.errors import ModelFolderError, UsageError
from crowguard.runtime import Runtime
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.merge import adapter_snapshot, make_transformers4_compatible, merge_and_save


def _adapted(model_dir: Path):  # noqa: ANN202
    from crowguard.models import load_model
    from crowguard.sanitize.lora import attach_lora

    loaded = load_model(model_dir, device="cpu")
    torch.manual_seed(3)
    peft_model = attach_lora(loaded.model, SanitizeConfig(), quantized=False)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return peft_model.eval(), loaded.tokenizer


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_output_matches_the_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    peft_model, tokenizer = _adapted(tiny_model_dir)
    ids = torch.tensor([[2, 5, 6, 7, 8, 9]])
    expected = _logits(peft_model, ids)
    out = tmp_path / "merged"
    out.mkdir()
    info = merge_and_save(tiny_model_dir, adapter_snapshot(peft_model), out)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-5)
    assert not torch.allclose(_logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), ids), expected, atol=1e-3)
    assert info["dtype"] == "float32" and "model.safetensors" in info["files"]
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in out.iterdir())
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["rope_theta"] == config["rope_parameters"]["rope_theta"]
    assert (out / "chat_template.jinja").is_file()


def test_transformers4_patches(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "llama", "dtype": "bfloat16",
        "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0}}))
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "TokenizersBackend", "extra_special_tokens": ["<a>"], "local_files_only": True}))
    changes = make_transformers4_compatible(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["rope_theta"] == 500000.0 and config["torch_dtype"] == "bfloat16"
    assert config["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0}
    tok = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast" and tok["additional_special_tokens"] == ["<a>"]
    assert "extra_special_tokens" not in tok and "local_files_only" not in tok and len(changes) == 6
    assert make_transformers4_compatible(tmp_path) == []  # idempotent


@pytest.mark.slow
def test_continue_a_given_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from crowguard.sanitize import sanitize_model

    peft_model, _ = _adapted(tiny_model_dir)
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    expected = _logits(peft_model, ids)
    data = tmp_path / "clean.json"
    data.write_text(json.dumps([{"instruction": "the cat sat", "output": "on the mat ."}] * 4))
    out = tmp_path / "out"
    out.mkdir()
    config = SanitizeConfig(lr=1e-9, max_steps=1, checkpoint_every=0)  # training barely moves the adapter
    outcome = sanitize_model(tiny_model_dir, out, config, clean_data=data, adapter=adapter,
                             runtime=Runtime(device="cpu"))
    assert outcome.metrics()["adapter"] == str(adapter)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert torch.allclose(_logits(merged, ids), expected, atol=1e-4)

    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(ModelFolderError, match="never unpickles"):
        sanitize_model(tiny_model_dir, out, config, clean_data=data, adapter=adapter, runtime=Runtime(device="cpu"))
    with pytest.raises(UsageError, match="adapter_config.json"):
        sanitize_model(tiny_model_dir, out, config, clean_data=data, adapter=tmp_path, runtime=Runtime(device="cpu"))
