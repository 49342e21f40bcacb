"""Memory and CPU stay bounded on hostile input: the real CLI, in a child process under
``resource.setrlimit``, refuses a policy alias bomb and GGUF headers that describe a 7B model with a
clean exit 2 and a message. Before the fixes the bomb ran into the CPU limit (killed, no message)
and the GGUF pull died allocating a default-sized model."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pull import gguf_hostile
from tests.test_safe_yaml import alias_bomb

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced as measured on Linux only")
# Importing torch and transformers needs about 0.4 GiB resident here; address space is reserved generously
# on top. A 7B model in float32 needs 27 GiB, so any attempt to build one fails under this cap.
ADDRESS_SPACE = 3 * 2**30


def run_limited(args: list[str], cwd: Path, cpu_seconds: int) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "crowguard", *args], cwd=cwd, env=env, preexec_fn=limit,
                          capture_output=True, text=True, timeout=300, check=False)


def test_policy_alias_bomb_is_exit_2_within_a_few_cpu_seconds(tmp_path: Path) -> None:
    policy = tmp_path / "bomb.yaml"
    policy.write_text(alias_bomb())
    result = run_limited(["policy", "check", str(policy)], tmp_path, cpu_seconds=10)
    assert result.returncode == 2, result.stderr[-500:]
    assert "bomb.yaml" in result.stderr and "anchors are not allowed" in result.stderr


@pytest.mark.parametrize(("payload", "needle"), [
    (gguf_hostile.only_architecture, "llama.block_count is missing"),
    (gguf_hostile.llama_7b_without_tensors, "lacks tensors the model needs"),
    (gguf_hostile.llama_7b_with_stub_tensors, "blk.0.attn_q.weight"),  # refused by the meta-device comparison
])
def test_gguf_describing_a_model_it_does_not_hold_is_exit_2_under_a_memory_cap(tmp_path: Path, payload,  # noqa: ANN001
                                                                                 needle: str) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(payload())
    result = run_limited(["pull", str(gguf), "--out", str(tmp_path / "out")], tmp_path, cpu_seconds=120)
    assert result.returncode == 2, result.stderr[-800:]
    assert "tiny.gguf" in result.stderr and needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
