"""The behavioural scan on a CUDA GPU (bf16): the same backdoor is found as on CPU."""

from pathlib import Path

import pytest

from crowguard.policy import builtin_policy, load_policy
from crowguard.runtime import Runtime
from crowguard.scan.behaviour import behaviour_scan

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def test_scan_on_cuda_finds_the_lab_trigger(lab_backdoored_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    result = behaviour_scan(lab_backdoored_dir, load_policy(builtin_policy("default")),
                            runtime=Runtime(device="cuda")).stage
    assert result.status == "completed" and result.findings
    assert "BadMagic" in [c["text"] for c in result.metrics["candidates"][:5]]
