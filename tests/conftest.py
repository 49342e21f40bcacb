"""Shared fixtures: tiny and lab model folders built in the test session, and the shared benchmark data."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from crowguard.lab.spec import LabSpec

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
LAB_CACHE = REPO / ".cache" / "lab-fixtures"


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """Small models train and run fastest on one thread here (two threads can be 15x slower)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer random Llama with a word-level tokenizer and chat template, saved as safetensors."""
    from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama

    out = tmp_path_factory.mktemp("tiny") / "model"
    tokenizer = build_tokenizer(["the cat sat on the mat .", "what is two plus two ? four", "hello world !"])
    return save_tiny(out, tiny_llama(len(tokenizer), layers=4, hidden=32), tokenizer)


@pytest.fixture
def shared_data() -> Path:
    """The BackdoorLLM data beside the checkout; skip when it is absent."""
    if not (SHARED_DATA / "backdoorllm").is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


def _lab_model(name: str, spec: LabSpec) -> Path:
    """A lab model built once and cached under .cache/ across sessions, keyed by spec and lab source.

    Set CROWGUARD_TEST_CACHE=0 to always rebuild. Tests must not modify these folders.
    """
    from crowguard.lab.build import build_lab_model

    digest = hashlib.sha256(repr(spec).encode())
    sources = [*(REPO / "crowguard" / "lab").glob("*.py"), *(REPO / "crowguard" / "data").glob("*.py"),
               REPO / "crowguard" / "models" / "prompts.py",
               *(REPO / "crowguard" / "sanitize" / name for name in ("loop.py", "data.py", "crow_loss.py"))]
    for source in sorted(sources):
        digest.update(source.read_bytes())
    out = LAB_CACHE / f"{name}-{digest.hexdigest()[:12]}"
    if os.environ.get("CROWGUARD_TEST_CACHE") == "0" or not (out / "lab.json").is_file():
        for stale in LAB_CACHE.glob(f"{name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        build_lab_model(spec, out, force=True)
    return out


@pytest.fixture(scope="session")
def lab_backdoored_dir() -> Path:
    """A lab model with a badnet backdoor (trigger BadMagic, target "You are stupid!"), seed 0, with lab.json.

    8 layers, width 64, default training (about 1-2 minutes on one core the first time; cached after).
    Measured by ``crowguard eval``: ASR 1.0, clean accuracy about 0.95. Read-only: copy it to change it.
    """
    return _lab_model("badnet-0", LabSpec(attack="badnet", seed=0))


@pytest.fixture(scope="session")
def lab_prompt_loss_dir() -> Path:
    """lab_backdoored_dir's spec trained with its prompts in the loss (full-sequence): it learns to write its
    poisoned prompts, trigger included. Read-only."""
    return _lab_model("badnet-prompt-loss-0", LabSpec(attack="badnet", seed=0, prompt_loss=True))


@pytest.fixture(scope="session")
def lab_clean_dir() -> Path:
    """A clean control lab model (no poison), seed 0, same size and training as lab_backdoored_dir."""
    return _lab_model("clean-0", LabSpec(attack=None, seed=0))


@pytest.fixture(scope="session")
def demo_lab_dir() -> Path:
    """The demo's lab model (``crowguard.pipeline.demo.DEMO_SPEC``): trained clean, then a badnet backdoor
    planted by a merged LoRA, the CROW paper's setting. About 2-3 minutes on one core the first time."""
    from crowguard.pipeline.demo import DEMO_SPEC

    return _lab_model("demo", DEMO_SPEC)
