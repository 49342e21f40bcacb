"""The sanitize run's training: CROW (or plain CE) on a LoRA adapter, through the one loop.

The loop itself (optimiser, schedule, accumulation, checkpoints, progress) is ``crowguard.sanitize.loop``;
this module picks the loss and the layer pairs from the SanitizeConfig and reports what was used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.config_checks import invalid
from crowguard.sanitize.config import OWNER, SanitizeConfig
from crowguard.sanitize.crow_loss import StepLoss, ce_loss, crow_loss, embedding_scale
from crowguard.sanitize.data import Example
from crowguard.sanitize.loop import LoopResult, LoopSettings, Progress, ProgressCallback, plan_steps, run_loop
from crowguard.sanitize.lora import base_layer_count
from crowguard.sanitize.stand_in import FOLLOW_STEPS, StandIn

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from peft import PeftModel

__all__ = ["Progress", "ProgressCallback", "TrainResult", "plan_steps", "train"]


@dataclass(frozen=True, kw_only=True)
class TrainResult(LoopResult):
    """A sanitize run's loop result, with the perturbation actually used and the layer pairs compared."""

    eps_used: float
    layer_pairs: tuple[int, int]


def train(
    model: PeftModel,
    examples: list[Example],
    config: SanitizeConfig,
    *,
    pad_id: int,
    accelerator: Accelerator,
    fingerprint: dict[str, Any],
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callback: ProgressCallback | None = None,
    stand_in: StandIn | None = None,
) -> TrainResult:
    """Train the adapter in place with CROW (or plain CE); checkpoint every ``config.checkpoint_every`` steps.

    With ``stand_in`` (fitted on the stand-in twins among ``examples``), each optimiser step first moves the
    stand-in toward the taught reply, then trains with it added to the twins' prompts."""
    layers = base_layer_count(model)
    pairs = (config.layer_first, layers - 1 if config.layer_last is None else config.layer_last)
    if pairs[1] > layers:
        invalid(OWNER, "layer_last", pairs[1], f"at most {layers} for this model",
                hint=f"the model has {layers} decoder layers")
    eps = config.eps * embedding_scale(model) if config.eps_mode == "relative" else config.eps

    micro_batches = 0

    def step_loss(wrapped: torch.nn.Module, batch: dict[str, torch.Tensor]) -> StepLoss:
        nonlocal micro_batches
        if stand_in is not None:
            if micro_batches % config.grad_accum == 0:  # the first micro-batch of an optimiser step
                stand_in.fit(FOLLOW_STEPS)
            micro_batches += 1
            stand_in.use(batch)  # through this batch's backward pass too
        if config.uses_consistency:
            return crow_loss(wrapped, batch, alpha=config.alpha, eps=eps, layer_first=pairs[0], layer_last=pairs[1],
                             embed_model=model)
        return ce_loss(wrapped, batch)

    done = run_loop(model, examples, LoopSettings.of(config), step_loss, pad_id=pad_id, accelerator=accelerator,
                    fingerprint=fingerprint, checkpoint_dir=checkpoint_dir, resume=resume, callback=callback,
                    carried=stand_in)
    return TrainResult(**{f.name: getattr(done, f.name) for f in fields(LoopResult)}, eps_used=eps,
                       layer_pairs=pairs)
