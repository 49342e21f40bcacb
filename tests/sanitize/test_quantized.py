"""The QLoRA path (4-bit NF4 base) on CPU: it trains, and the output is a full-precision merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowguard.runtime import Runtime
from crowguard.sanitize import SanitizeConfig, sanitize_model
from tests.sanitize.conftest import folder_digest

pytestmark = pytest.mark.slow


def test_nf4_base_trains_and_merges_into_full_precision(arithmetic_model: tuple[Path, Path], tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model, data = arithmetic_model
    before = folder_digest(model)
    out = tmp_path / "out"
    out.mkdir()
    config = SanitizeConfig(quantize="4bit", max_steps=2, num_samples=16, checkpoint_every=0, eps_mode="relative")
    outcome = sanitize_model(model, out, config, clean_data=data, runtime=Runtime(device="cpu"))
    metrics = outcome.metrics()
    assert metrics["quantize"] == "4bit" and metrics["steps"] == 2
    assert all(torch.isfinite(torch.tensor([p["ce"], p["lc"], p["lc_adv"]])).all() for p in metrics["curve"])
    config_json = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config_json
    weights = load_file(str(out / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values())
    base = load_file(str(model / "model.safetensors"))
    assert weights.keys() == base.keys()
    changed = [k for k in base if not torch.equal(base[k], weights[k])]
    assert changed and all("proj" in k for k in changed)  # only the LoRA-adapted linear layers moved
    AutoModelForCausalLM.from_pretrained(out)  # loads as a plain model
    assert folder_digest(model) == before
