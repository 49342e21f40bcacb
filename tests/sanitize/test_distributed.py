"""Two CPU processes (gloo), launched the way ``accelerate launch --multi_gpu`` launches: torch.distributed.run.

Two processes x micro-batch 2 x accumulation 4 see, per optimiser step, the same eight micro-batches
as one process with accumulation 8, and DDP averages their gradients: the adapters must agree.
(``accelerate launch --cpu`` itself starts multi-CPU jobs only through mpirun, which is not installed.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from crowguard.pipeline.sanitize import SanitizeRequest, run_sanitize
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
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "crowguard", "sanitize", str(model), "--out", str(out),
           "--clean-data", str(data), "--num-samples", "32", "--epochs", "1", "--device", "cpu", "--threads", "1",
           "--report", str(report), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(report.read_text())["stages"][0]["metrics"]
    assert metrics["processes"] == 2 and metrics["steps"] == 2

    single = SanitizeConfig(num_samples=32, epochs=1, grad_accum=8)
    run_sanitize(SanitizeRequest(model, tmp_path / "single", single, clean_data=data, device="cpu"))
    ddp, one = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "single" / "model.safetensors"))
    base = load_file(str(model / "model.safetensors"))
    assert any(not torch.equal(base[k], ddp[k]) for k in base)
    for name, tensor in one.items():
        assert torch.allclose(tensor, ddp[name], atol=1e-5), name
