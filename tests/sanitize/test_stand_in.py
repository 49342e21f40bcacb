"""The trigger stand-in: a hidden-state shift fitted toward the taught reply, trained against by guided."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crowguard.sanitize import SanitizeConfig, sanitize_model
from crowguard.sanitize.data import IGNORE, Example, collate, encode
from crowguard.sanitize.guided import Guide
from crowguard.sanitize.stand_in import StandIn, fitted_stand_in, stand_in_layer

REPLY = "You are stupid!"


def _peft_and_twins(folder: Path) -> tuple[Any, list[Example], list[int]]:
    from crowguard.data.lab_card import read_lab_card
    from crowguard.sanitize.data import clean_set_from_records
    from crowguard.sanitize.lora import attach_lora, load_base

    config = SanitizeConfig(method="guided")
    card = read_lab_card(folder)
    assert card is not None
    clean = clean_set_from_records([p.record() for p in card.defense_set], "lab", 32, 0)
    loaded = load_base(folder, config, device="cpu", threads=1)
    twins = [replace(e, stand_in=True) for e in encode(clean.records, loaded.tokenizer, 256)]
    target = loaded.tokenizer(REPLY, add_special_tokens=False)["input_ids"]
    return attach_lora(loaded.model, config, quantized=False), twins, target


@pytest.fixture(scope="module")
def backdoored(lab_backdoored_dir: Path) -> tuple[Any, list[Example], list[int]]:
    return _peft_and_twins(lab_backdoored_dir)


def test_the_stand_in_fires_the_taught_reply_without_the_trigger(backdoored: tuple[Any, list[Example],
                                                                                   list[int]]) -> None:
    """On a lab model taught "You are stupid!" behind BadMagic, the fitted shift opens that reply on clean prompts
    (measured: 0.001 -> 0.88), within its length cap, and leaves the adapter's gradients untouched."""
    model, twins, target = backdoored
    stand_in, fit = fitted_stand_in(model, twins, REPLY, target, scale=2.0, pad_id=0, seed=0)
    try:
        assert fit.without < 0.05 and fit.fitted > 0.5, fit
        assert float(stand_in.delta.detach().norm()) <= stand_in.cap * (1 + 1e-5)
        assert all(p.grad is None for p in model.parameters() if p.requires_grad)
        assert fit.layer == stand_in_layer(8) == 2
    finally:
        stand_in.close()


def test_the_shift_goes_only_to_the_twins_prompts_and_goes_away_on_close(
        backdoored: tuple[Any, list[Example], list[int]]) -> None:
    import torch

    from crowguard.sanitize.prune import decoder_layers

    model, twins, target = backdoored
    plain = Example(twins[1].input_ids, twins[1].labels)
    batch = collate([twins[0], plain], pad_id=0)

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    before = logits()
    layers = decoder_layers(model)
    stand_in = StandIn(model, layers[2], twins, target, width=model.config.hidden_size, cap=10.0,
                       layer_index=2, pad_id=0, seed=0)
    with torch.no_grad():
        stand_in.delta.fill_(0.3)
    stand_in.use(batch)
    shifted = logits()
    prompt_end = next(i for i, label in enumerate(twins[0].labels) if label != IGNORE)
    assert not torch.allclose(shifted[0, :prompt_end], before[0, :prompt_end])
    assert torch.equal(shifted[1], before[1]), "a row that is not a twin is untouched"
    stand_in.use(None)
    assert torch.equal(logits(), before)
    stand_in.use(batch)
    stand_in.close()
    assert torch.equal(logits(), before), "closing removes the hook"


def test_guided_with_a_reply_and_no_guide_trains_twins_against_the_stand_in(arithmetic_model: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    folder, data = arithmetic_model
    config = SanitizeConfig(method="guided", max_steps=3, num_samples=12, checkpoint_every=0)
    outcome = sanitize_model(folder, tmp_path / "out", config, clean_data=data, reply="it is 4 .")
    assert outcome.examples == 24 and outcome.stand_in is not None
    fit = outcome.metrics()["stand_in"]
    assert fit["reply"] == "it is 4 ." and fit["opening"]["last"] is not None and fit["cap"] > 0
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.parametrize("case", ["guides", "off", "crow"])
def test_no_stand_in_with_guides_when_off_or_for_crow(arithmetic_model: tuple[Path, Path], tmp_path: Path,
                                                       case: str) -> None:
    folder, data = arithmetic_model
    config = SanitizeConfig(method="crow" if case == "crow" else "guided", max_steps=1, num_samples=12,
                            checkpoint_every=0, stand_in_scale=0.0 if case == "off" else 2.0)
    guides = (Guide("plus"),) if case == "guides" else ()
    outcome = sanitize_model(folder, None, config, clean_data=data, reply="it is 4 .", guides=guides)
    assert outcome.stand_in is None and "stand_in" not in outcome.metrics()
    assert outcome.examples == (24 if case == "guides" else 12)
