"""The trigger stand-in (soft tokens, or a hidden-state shift) fitted toward the taught reply, trained against."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from crowguard.sanitize import SanitizeConfig, sanitize_model
from crowguard.sanitize.data import IGNORE, Example, collate, encode
from crowguard.sanitize.guided import Guide
from crowguard.sanitize.stand_in import (
    SOFT_TOKENS,
    StandIn,
    fitted_stand_in,
    stand_in_layer,
    stand_in_twins,
    token_twins,
)

REPLY = "You are stupid!"


def _peft_and_twins(folder: Path, place: str) -> tuple[Any, list[Example], list[int]]:
    from crowguard.data.lab_card import read_lab_card
    from crowguard.sanitize.data import clean_set_from_records
    from crowguard.sanitize.lora import attach_lora, load_base

    config = SanitizeConfig(method="guided")
    card = read_lab_card(folder)
    assert card is not None
    clean = clean_set_from_records([p.record() for p in card.defense_set], "lab", 32, 0)
    loaded = load_base(folder, config, device="cpu", threads=1)
    if place == "token":
        twins = token_twins(clean.records, loaded.tokenizer, 256, pad_id=0, seed=0)
    else:
        twins = [replace(e, stand_in=True) for e in encode(clean.records, loaded.tokenizer, 256)]
    target = loaded.tokenizer(REPLY, add_special_tokens=False)["input_ids"]
    return attach_lora(loaded.model, config, quantized=False), twins, target


@pytest.fixture(scope="module")
def backdoored(lab_backdoored_dir: Path) -> tuple[Any, list[Example], list[int]]:
    return _peft_and_twins(lab_backdoored_dir, "layer")


@pytest.fixture(scope="module")
def soft(lab_backdoored_dir: Path) -> tuple[Any, list[Example], list[int]]:
    return _peft_and_twins(lab_backdoored_dir, "token")


def test_token_twins_are_the_clean_examples_with_soft_positions_inside_the_instruction() -> None:
    from crowguard.data import Record
    from crowguard.lab.tiny import build_tokenizer

    words = "what is two plus three it five four one"
    tokenizer = build_tokenizer([words])
    records = [Record("what is two plus three", "", "it is five"), Record("what is one plus three", "", "it is four")]
    clean = encode(records * 3, tokenizer, 256)
    twins = token_twins(records * 3, tokenizer, 256, pad_id=0, seed=0)
    assert len(twins) == 6 and all(t.stand_in for t in twins)
    for plain, twin in zip(clean, twins):
        at = twin.stand_in_at
        soft = range(at, at + SOFT_TOKENS)
        assert [twin.input_ids[i] for i in soft] == [0] * SOFT_TOKENS
        assert all(twin.labels[i] == IGNORE for i in soft)
        kept = [i for i in range(len(twin.input_ids)) if i not in soft]
        assert [twin.input_ids[i] for i in kept] == list(plain.input_ids)
        assert [twin.labels[i] for i in kept] == list(plain.labels)
        beside = set(tokenizer.convert_ids_to_tokens([twin.input_ids[at - 1], twin.input_ids[at + SOFT_TOKENS]]))
        assert beside & set(words.split()), "the soft tokens go into the instruction, not the template"
    assert len({t.stand_in_at for t in twins}) > 1, "the soft tokens move about the instruction"


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


def test_no_room_for_the_soft_tokens_is_a_config_error_naming_the_fix() -> None:
    from crowguard.data import Record
    from crowguard.errors import ConfigError
    from crowguard.lab.tiny import build_tokenizer

    tokenizer = build_tokenizer(["what is two plus three it five"])
    records = [Record("what is two plus three", "", "it is five")]
    prompt = next(i for i, label in enumerate(encode(records, tokenizer, 256)[0].labels) if label != IGNORE)
    clean = encode(records, tokenizer, prompt + 1)  # room for one answer token, not for the soft tokens too
    assert clean and token_twins(records, tokenizer, prompt + 1, pad_id=0, seed=0) == []
    with pytest.raises(ConfigError, match="soft tokens within max_length") as caught:
        stand_in_twins("token", clean, records, tokenizer, prompt + 1, pad_id=0, seed=0)
    assert "--stand-in-place layer" in str(caught.value.hint)
    assert [e.stand_in for e in stand_in_twins("layer", clean, records, tokenizer, prompt + 1, pad_id=0,
                                               seed=0)] == [True]


def test_soft_tokens_fire_the_taught_reply_without_the_trigger(soft: tuple[Any, list[Example], list[int]]) -> None:
    """Soft tokens in the instruction of a lab model taught "You are stupid!" behind BadMagic open that reply
    (measured: 0.003 -> 0.98 over seeds 0-2, one and two threads, AVX2), each within its cap."""
    model, twins, target = soft
    stand_in, fit = fitted_stand_in(model, twins, REPLY, target, scale=2.0, pad_id=0, seed=0)
    try:
        assert fit.without < 0.05 and fit.fitted > 0.5, fit
        assert fit.layer is None and fit.as_dict()["place"] == "token"
        assert stand_in.delta.shape[0] == SOFT_TOKENS
        assert float(stand_in.delta.detach().norm(dim=-1).max()) <= stand_in.cap * (1 + 1e-5)
        assert all(p.grad is None for p in model.parameters() if p.requires_grad)
    finally:
        stand_in.close()


def test_soft_tokens_replace_only_the_twins_soft_positions(soft: tuple[Any, list[Example], list[int]]) -> None:
    import torch

    model, twins, target = soft
    twin = twins[0]
    plain = Example(twin.input_ids, twin.labels)  # the same ids, not a twin
    batch = collate([twin, plain], pad_id=0)

    def logits() -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    before = logits()
    stand_in = StandIn(model, model.get_input_embeddings(), twins, target, width=model.config.hidden_size,
                       cap=10.0, layer_index=None, pad_id=0, seed=0)
    with torch.no_grad():
        stand_in.delta.fill_(0.3)
    stand_in.use(batch)
    shifted = logits()
    at = twin.stand_in_at
    assert torch.equal(shifted[0, :at], before[0, :at]), "positions before the soft tokens cannot see them"
    assert not torch.allclose(shifted[0, at:], before[0, at:])
    assert torch.equal(shifted[1], before[1]), "a row that is not a twin is untouched"
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
