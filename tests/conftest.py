"""Shared fixtures: a tiny model folder built in the test session, and the shared benchmark data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


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
