"""``accelerate launch`` with two CPU processes (gloo) runs the unchanged command.

``--multi_gpu`` selects accelerate's torch.distributed launcher; ``--device cpu`` keeps the processes
on CPU (``accelerate launch --cpu`` would start a multi-CPU job only through mpirun, not installed).
Two processes x micro-batch 2 x accumulation 4 see, per optimiser step, the same eight micro-batches
as one process with accumulation 8, and DDP averages their gradients: the adapters must agree.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crowguard.pipeline.sanitize import SanitizeRequest, SanitizeSettings, run_sanitize
from crowguard.runtime import Runtime
from crowguard.sanitize.config import SanitizeConfig

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process_with_double_accumulation(arithmetic_model: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    model, data = arithmetic_model
    out, report = tmp_path / "ddp", tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(_free_port()), "-m", "crowguard", "sanitize", str(model), "--out", str(out),
           "--clean-data", str(data), "--num-samples", "32", "--epochs", "1", "--device", "cpu", "--threads", "1",
           "--no-scan", "--report", str(report), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(report.read_text())["stages"][0]["metrics"]
    assert metrics["processes"] == 2 and metrics["steps"] == 2

    single = SanitizeConfig(num_samples=32, epochs=1, grad_accum=8)
    run_sanitize(SanitizeRequest(model, tmp_path / "single", SanitizeSettings(single, clean_data=data),
                                 Runtime(device="cpu")))
    ddp, one = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "single" / "model.safetensors"))
    base = load_file(str(model / "model.safetensors"))
    assert any(not torch.equal(base[k], ddp[k]) for k in base)
    for name, tensor in one.items():
        assert torch.allclose(tensor, ddp[name], atol=1e-5), name
