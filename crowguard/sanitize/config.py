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

Method = Literal["crow", "finetune", "guided", "prune"]
EpsMode = Literal["absolute", "relative"]
QuantizeMode = Literal["auto", "4bit", "none"]
StandInPlace = Literal["token", "layer"]

METHODS: tuple[str, ...] = ("crow", "finetune", "guided", "prune")
EPS_MODES: tuple[str, ...] = ("absolute", "relative")
QUANTIZE_MODES: tuple[str, ...] = ("auto", "4bit", "none")
STAND_IN_PLACES: tuple[str, ...] = ("token", "layer")
OWNER = "sanitize config"
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "refusal": {"alpha": 11.0},
}


@dataclass(frozen=True)
class ConfigFile:
    """The ``--sanitize-config`` file a config was read from: the path as given and the sha256 of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True)
class SanitizeConfig:
    """Training settings. ``eps_mode='relative'`` scales eps by the embedding rows' RMS entry size.

    In relative mode the sign step ``eps * sign(g)`` has, per token, an L2 norm of
    ``eps * mean_row_norm``: eps becomes a fraction of a typical embedding row's length, which keeps the
    perturbation meaningful on models whose embeddings are much smaller than 0.1 per entry.
    """

    # Field metadata drives the CLI: "help" is the option's help text, "group" its help panel (training,
    # crow, run; none: the command's main options), "shown" the default as help shows it when the value
    # alone would mislead. Every field is an option of `crowguard sanitize` and `crowguard gate`.
    method: Method = dataclasses.field(default="crow", metadata={
        "help": "crow; guided (CROW over the clean prompts and their twins with the scan's trigger candidates "
                "inserted, in rounds); finetune (plain LoRA baseline, alpha 0); or prune (Wanda pruning baseline: "
                "no training, --sparsity of each decoder linear's weights zeroed)."})
    lr: float = dataclasses.field(default=1e-3, metadata={"help": "Learning rate.", "group": "training"})
    epochs: int = dataclasses.field(default=5, metadata={"help": "Epochs.", "group": "training"})
    micro_batch: int = dataclasses.field(default=2, metadata={"help": "Micro-batch size.", "group": "training"})
    grad_accum: int = dataclasses.field(default=4, metadata={"help": "Gradient accumulation.", "group": "training"})
    max_length: int = dataclasses.field(default=1024, metadata={"help": "Max tokens per sample.",
                                                                 "group": "training"})
    alpha: float = dataclasses.field(default=5.5, metadata={"help": "Weight of the consistency loss.",
                                                             "group": "crow"})
    eps: float = dataclasses.field(default=0.1, metadata={"help": "FGSM step size.", "group": "crow"})
    eps_mode: EpsMode = dataclasses.field(default="absolute", metadata={
        "help": "absolute, or relative (eps times the embeddings' RMS entry size).", "group": "crow"})
    layer_first: int = dataclasses.field(default=1, metadata={"help": "First hidden-state pair.", "group": "crow"})
    layer_last: int | None = dataclasses.field(default=None, metadata={  # None: L - 1, the paper's h[1:-2] vs h[2:-1]
        "help": "End of the pair range, exclusive.", "group": "crow", "shown": "L-1"})
    lora_r: int = dataclasses.field(default=8, metadata={"help": "LoRA rank.", "group": "training"})
    lora_alpha: float = dataclasses.field(default=16.0, metadata={"help": "LoRA alpha.", "group": "training"})
    lora_dropout: float = dataclasses.field(default=0.0, metadata={"help": "LoRA dropout.", "group": "training"})
    lora_targets: tuple[str, ...] = dataclasses.field(default=("all-linear",), metadata={
        "help": "Comma-separated module names (a list in --sanitize-config).", "group": "training"})
    warmup_ratio: float = dataclasses.field(default=0.1, metadata={"help": "Warm-up fraction.", "group": "training"})
    weight_decay: float = dataclasses.field(default=0.0, metadata={"help": "AdamW weight decay.",
                                                                    "group": "training"})
    max_grad_norm: float = dataclasses.field(default=1.0, metadata={"help": "Gradient clip.", "group": "training"})
    preset: str = dataclasses.field(default="default", metadata={
        "help": "default, or refusal (alpha 11, for refusal backdoors); explicit settings win."})
    seed: int = dataclasses.field(default=0, metadata={"help": "Seed for sample choice and order.",
                                                        "group": "training"})
    quantize: QuantizeMode = dataclasses.field(default="auto", metadata={
        "help": "auto (4-bit NF4 on CUDA), 4bit, or none.", "group": "run"})
    gradient_checkpointing: bool = dataclasses.field(default=False, metadata={
        "help": "Non-reentrant checkpointing.", "group": "run", "shown": "off"})
    checkpoint_every: int = dataclasses.field(default=20, metadata={
        "help": "Checkpoint every N steps.", "group": "run", "shown": "20; 0 off"})
    stand_in_scale: float = dataclasses.field(default=2.0, metadata={
        "help": "Method guided with no trigger candidate but a taught reply the scan inverted: train against a "
                "trigger stand-in (soft tokens, or a hidden-state shift: --stand-in-place) fitted toward that "
                "reply, each vector at most this many median lengths of what it replaces or shifts.",
        "group": "training", "shown": "2.0; 0 off"})
    stand_in_place: StandInPlace = dataclasses.field(default="token", metadata={
        "help": "Where the trigger stand-in goes: token (soft tokens inserted into the instruction, where a "
                "trigger phrase would be) or layer (a shift of every prompt position after an early decoder layer, "
                "as BEEAR does).",
        "group": "training"})
    num_samples: int = dataclasses.field(default=100, metadata={"help": "Clean samples used.", "group": "training"})
    sparsity: float = dataclasses.field(default=0.5, metadata={
        "help": "Share of each decoder linear's weights --method prune zeroes, per output row.", "group": "training"})
    max_steps: int | None = dataclasses.field(default=None, metadata={  # benchmarks, smoke runs
        "help": "Stop after N optimiser steps.", "group": "training"})
    distill_max_new_tokens: int = dataclasses.field(default=128, metadata={
        "help": "Tokens generated per instruction when the clean set is self-distilled.", "group": "training"})
    max_shard_size: str = dataclasses.field(default="2GB", metadata={
        "help": "Largest safetensors shard of the sanitized model, e.g. 500MB.", "group": "run"})
    # where the settings came from, for the report: not a setting (no option, not in a file, not compared)
    config_file: ConfigFile | None = dataclasses.field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self) -> None:
        check = FieldChecks(OWNER, self)
        check.choice("method", METHODS)
        if self.method == "finetune":  # the plain-LoRA baseline is CROW with alpha 0, by definition
            object.__setattr__(self, "alpha", 0.0)
        check.choice("eps_mode", EPS_MODES)
        check.choice("quantize", QUANTIZE_MODES)
        check.choice("preset", PRESETS)
        check.choice("stand_in_place", STAND_IN_PLACES)
        check.at_least(1, "epochs", "micro_batch", "grad_accum", "max_length", "lora_r", "num_samples",
                       "distill_max_new_tokens")
        check.at_least(0, "checkpoint_every", "layer_first")
        check.at_least(1, "max_steps", optional=True)
        if self.layer_last is not None and self.layer_last <= self.layer_first:
            check.fail("layer_last", f"greater than layer_first ({self.layer_first})",
                       hint="give a layer-pair range [first, last) with first < last")
        check.positive("lr", "lora_alpha")
        check.non_negative("alpha", "eps", "weight_decay", "max_grad_norm", "stand_in_scale")
        check.fraction("warmup_ratio", "lora_dropout")
        check.fraction("sparsity", include_zero=False)
        if not self.lora_targets:
            check.fail("lora_targets", "at least one module name",
                       hint="use 'all-linear' or module names such as q_proj,v_proj")

    @classmethod
    def from_options(cls, preset: str = "default", **options: Any) -> SanitizeConfig:
        """Defaults, then the preset's values, then every option that is not None."""
        if preset not in PRESETS:
            invalid(OWNER, "preset", preset, f"one of {', '.join(PRESETS)}", hint=f"use one of: {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in options.items() if v is not None}}
        names = {f.name for f in setting_fields()}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown sanitize option(s): {', '.join(unknown)}", hint="check the option names")
        return cls(preset=preset, **values)

    @property
    def uses_consistency(self) -> bool:
        """Whether the loss has the adversarial consistency term (CROW) or is plain CE (finetune)."""
        return self.method in ("crow", "guided") and self.alpha > 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able settings for the report."""
        data = dataclasses.asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        return data

    def training_fingerprint(self) -> dict[str, Any]:
        """The settings that must match for a checkpoint to be resumed."""
        data = self.as_dict()
        for name in ("checkpoint_every", "max_shard_size", "distill_max_new_tokens", "config_file"):
            data.pop(name)
        return data


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields of ``SanitizeConfig`` that are settings (each an option and a file key), in order."""
    return tuple(f for f in dataclasses.fields(SanitizeConfig) if f.metadata.get("setting", True))
