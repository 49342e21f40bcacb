"""QLoRA on CUDA: ``--quantize auto`` loads the base in 4-bit NF4 there and still emits a full-precision merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_quantize_is_nf4_on_cuda(arithmetic_model: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from crowguard.runtime import Runtime
    from crowguard.sanitize import SanitizeConfig, sanitize_model

    model, data = arithmetic_model
    out = tmp_path / "out"
    out.mkdir()
    outcome = sanitize_model(model, out, SanitizeConfig(max_steps=2, num_samples=8, checkpoint_every=0),
                             clean_data=data, runtime=Runtime(device="cuda"))
    metrics = outcome.metrics()
    assert metrics["quantize"] == "4bit" and metrics["device"].startswith("cuda")
    assert metrics["peak_memory"]["kind"] == "cuda_max_allocated" and metrics["peak_memory"]["bytes"] > 0
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert all(t.dtype == torch.float32 for t in load_file(str(out / "model.safetensors")).values())
