"""SanitizeConfig: the paper's defaults, presets, and errors that name the field and the value."""

from __future__ import annotations

import pytest

from crowguard.errors import ConfigError
from crowguard.sanitize.config import SanitizeConfig


def test_defaults_are_the_papers() -> None:
    c = SanitizeConfig()
    assert (c.lr, c.epochs, c.micro_batch, c.grad_accum, c.max_length) == (1e-3, 5, 2, 4, 1024)
    assert (c.alpha, c.eps, c.eps_mode, c.layer_first, c.layer_last) == (5.5, 0.1, "absolute", 1, None)
    assert (c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_targets) == (8, 16.0, 0.0, ("all-linear",))
    assert (c.warmup_ratio, c.weight_decay, c.max_grad_norm, c.num_samples) == (0.1, 0.0, 1.0, 100)
    assert (c.quantize, c.gradient_checkpointing, c.method) == ("auto", False, "crow")


def test_preset_then_explicit_options() -> None:
    assert SanitizeConfig.from_options("refusal").alpha == 11.0
    assert SanitizeConfig.from_options("refusal", alpha=3.0, lr=None).alpha == 3.0
    assert SanitizeConfig.from_options("refusal", lr=None).lr == 1e-3
    finetune = SanitizeConfig.from_options("refusal", method="finetune")
    assert not finetune.uses_consistency and finetune.alpha == 0.0 and SanitizeConfig().uses_consistency


@pytest.mark.parametrize("field,value", [
    ("method", "distill"), ("lr", 0.0), ("epochs", 0), ("micro_batch", -1), ("eps", -0.1), ("eps_mode", "weird"),
    ("warmup_ratio", 1.5), ("quantize", "8bit"), ("lora_dropout", 1.0), ("max_steps", 0), ("layer_last", 1),
    ("sparsity", 0.0), ("sparsity", 1.0),
])
def test_bad_values_name_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        SanitizeConfig(**{field: value})
    assert field in err.value.message and repr(value) in err.value.message or str(value) in err.value.message


def test_unknown_preset_and_option() -> None:
    with pytest.raises(ConfigError, match="preset"):
        SanitizeConfig.from_options("aggressive")
    with pytest.raises(ConfigError, match="learning_rate"):
        SanitizeConfig.from_options(learning_rate=1.0)
