"""Every knob of a sanitize run, with the CROW paper's values as defaults (see ../shared/CROW.md).

``SanitizeConfig`` is frozen and validates itself; a bad value raises ConfigError naming the field
and the value. Presets are named bundles of overrides (``refusal`` -> alpha 11, the paper's setting
for targeted-refusal backdoors); explicit values win over a preset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from crowguard.config_checks import FieldChecks, invalid
from crowguard.errors import ConfigError

Method = Literal["crow", "finetune"]
EpsMode = Literal["absolute", "relative"]
QuantizeMode = Literal["auto", "4bit", "none"]

METHODS: tuple[str, ...] = ("crow", "finetune")
EPS_MODES: tuple[str, ...] = ("absolute", "relative")
QUANTIZE_MODES: tuple[str, ...] = ("auto", "4bit", "none")
OWNER = "sanitize config"
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "refusal": {"alpha": 11.0},
}


@dataclass(frozen=True)
class SanitizeConfig:
    """Training settings. ``eps_mode='relative'`` scales eps by the embedding rows' RMS entry size.

    In relative mode the sign step ``eps * sign(g)`` has, per token, an L2 norm of
    ``eps * mean_row_norm``: eps becomes a fraction of a typical embedding row's length, which keeps the
    perturbation meaningful on models whose embeddings are much smaller than 0.1 per entry.
    """

    method: Method = "crow"
    lr: float = 1e-3
    epochs: int = 5
    micro_batch: int = 2
    grad_accum: int = 4
    max_length: int = 1024
    alpha: float = 5.5
    eps: float = 0.1
    eps_mode: EpsMode = "absolute"
    layer_first: int = 1
    layer_last: int | None = None  # None -> L - 1, the paper's h[1:-2] vs h[2:-1]
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("all-linear",)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    preset: str = "default"
    seed: int = 0
    quantize: QuantizeMode = "auto"
    gradient_checkpointing: bool = False
    checkpoint_every: int = 20
    num_samples: int = 100
    max_steps: int | None = None  # stop after this many optimiser steps (benchmarks, smoke runs)
    distill_max_new_tokens: int = 128
    max_shard_size: str = "2GB"

    def __post_init__(self) -> None:
        check = FieldChecks(OWNER, self)
        check.choice("method", METHODS)
        if self.method == "finetune":  # the plain-LoRA baseline is CROW with alpha 0, by definition
            object.__setattr__(self, "alpha", 0.0)
        check.choice("eps_mode", EPS_MODES)
        check.choice("quantize", QUANTIZE_MODES)
        check.choice("preset", PRESETS)
        check.at_least(1, "epochs", "micro_batch", "grad_accum", "max_length", "lora_r", "num_samples",
                       "distill_max_new_tokens")
        check.at_least(0, "checkpoint_every", "layer_first")
        check.at_least(1, "max_steps", optional=True)
        if self.layer_last is not None and self.layer_last <= self.layer_first:
            check.fail("layer_last", f"greater than layer_first ({self.layer_first})",
                       hint="give a layer-pair range [first, last) with first < last")
        check.positive("lr", "lora_alpha")
        check.non_negative("alpha", "eps", "weight_decay", "max_grad_norm")
        check.fraction("warmup_ratio", "lora_dropout")
        if not self.lora_targets:
            check.fail("lora_targets", "at least one module name",
                       hint="use 'all-linear' or module names such as q_proj,v_proj")

    @classmethod
    def from_options(cls, preset: str = "default", **options: Any) -> SanitizeConfig:
        """Defaults, then the preset's values, then every option that is not None."""
        if preset not in PRESETS:
            invalid(OWNER, "preset", preset, f"one of {', '.join(PRESETS)}", hint=f"use one of: {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown sanitize option(s): {', '.join(unknown)}", hint="check the option names")
        return cls(preset=preset, **values)

    @property
    def uses_consistency(self) -> bool:
        """Whether the loss has the adversarial consistency term (CROW) or is plain CE (finetune)."""
        return self.method == "crow" and self.alpha > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings for the report."""
        data = dataclasses.asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        return data

    def training_fingerprint(self) -> dict[str, Any]:
        """The settings that must match for a checkpoint to be resumed."""
        data = self.as_dict()
        for name in ("checkpoint_every", "max_shard_size", "distill_max_new_tokens"):
            data.pop(name)
        return data

