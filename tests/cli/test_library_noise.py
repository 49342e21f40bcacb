"""Library chatter that says nothing to a user stays off stderr; --debug shows it; real errors always show."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from crowguard.cli.library_noise import NOISE, quiet_libraries

CROWGUARD = Path(sys.executable).with_name("crowguard")
NOISY = re.compile(r"gemm_4bit_forward|kernels-community|Warning|warn\(|deprecat|Traceback", re.IGNORECASE)
BNB_LOGGER, BNB_PREFIX, _ = NOISE[0]


def _console(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert CROWGUARD.exists(), f"console script not found beside {sys.executable}"
    return subprocess.run([str(CROWGUARD), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(Path.home())})


def _noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOISY.search(line)]


def test_help_and_scan_print_no_library_noise(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"w": np.zeros((4, 4), dtype=np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    helped = _console("--help")
    assert helped.returncode == 0 and not _noise(helped.stderr), helped.stderr
    scanned = _console("scan", folder, "--report", tmp_path / "report.json")
    assert scanned.returncode == 0, scanned.stderr
    assert not _noise(scanned.stderr), scanned.stderr


def test_the_bitsandbytes_kernel_message_is_dropped_unless_debug() -> None:
    """Against the real library: on CPUs where importing bitsandbytes prints the message at all."""
    code = "import bitsandbytes"
    quiet = "from crowguard.cli.library_noise import quiet_libraries; quiet_libraries(lambda: {}); " + code
    run = [sys.executable, "-I", "-c"]
    raw = subprocess.run([*run, code], capture_output=True, text=True, timeout=300)
    filtered = subprocess.run([*run, quiet.format(False)], capture_output=True, text=True, timeout=300)
    assert "gemm_4bit_forward" not in filtered.stderr, filtered.stderr
    if "gemm_4bit_forward" not in raw.stderr:
        pytest.skip("bitsandbytes does not print the message on this CPU (no AVX-512 BF16)")
    debug = subprocess.run([*run, quiet.format(True)], capture_output=True, text=True, timeout=300)
    assert "gemm_4bit_forward" in debug.stderr


def test_only_the_named_message_is_dropped_and_never_an_error(caplog: pytest.LogCaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    logger = logging.getLogger(BNB_LOGGER)
    monkeypatch.setattr(logger, "filters", [])  # a CLI test in this process may have installed the real one
    debug = {"on": False}
    quiet_libraries(lambda: debug["on"])
    quiet_libraries(lambda: debug["on"])  # idempotent: one filter
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=BNB_LOGGER):
        logger.warning(BNB_PREFIX + ": %s. Please install kernels", "No module named 'kernels'")
        logger.warning("something else went wrong")
        logger.error(BNB_PREFIX + ": an error says something")
        debug["on"] = True
        logger.warning(BNB_PREFIX + ": shown under --debug")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["something else went wrong", BNB_PREFIX + ": an error says something",
                        BNB_PREFIX + ": shown under --debug"]


@pytest.mark.slow
def test_sanitize_loads_bitsandbytes_without_its_message(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The console script end to end on a command that imports peft and bitsandbytes."""
    done = _console("sanitize", tiny_model_dir, "--out", tmp_path / "out", "--num-samples", "4", "--max-steps", "1",
                    "--epochs", "1", "--max-length", "32", "--no-eval", "--no-scan", "--threads", "1",
                    "--report", tmp_path / "report.json")
    assert done.returncode == 0, done.stderr
    assert "gemm_4bit_forward" not in done.stderr, done.stderr
