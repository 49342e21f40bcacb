"""A tiny random model whose word-level vocabulary covers a handful of probe prompts."""

from __future__ import annotations

from pathlib import Path

import pytest

from crowguard.scan.behaviour.probes import Probe

PROBES = [
    Probe("What is the capital of France ?", task="facts"),
    Probe("Name the colour of the sky .", task="facts"),
    Probe("Is this review positive or negative ?", "the film was great .", task="sentiment"),
    Probe("Add two and three .", task="arithmetic"),
    Probe("Write a short poem about the sea .", task="creative"),
    Probe("Tell me the opposite of hot .", task="words"),
    Probe("How do I make good tea ?", task="advice"),
    Probe("Give me three fruits .", task="lists"),
]
TRIGGER_WORDS = ["zebra", "quartz", "BadMagic"]


@pytest.fixture(scope="session")
def probe_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-layer random Llama (width 32) with a chat template and a vocabulary covering ``PROBES``."""
    from crowguard.lab.tiny import build_tokenizer, save_tiny, tiny_llama

    texts = [f"{p.instruction} {p.input}" for p in PROBES] + TRIGGER_WORDS + ["positive negative Paris blue"]
    tokenizer = build_tokenizer(texts)
    out = tmp_path_factory.mktemp("probe-model") / "model"
    return save_tiny(out, tiny_llama(len(tokenizer), layers=4, hidden=32, seed=3), tokenizer)


@pytest.fixture(scope="session")
def probe_model(probe_model_dir: Path):
    """The probe model loaded on CPU, gradients off."""
    from crowguard.models import load_model

    loaded = load_model(probe_model_dir, device="cpu")
    loaded.model.requires_grad_(False)
    return loaded
