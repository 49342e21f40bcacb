"""The training loop: AdamW, cosine schedule with warm-up, gradient clipping and accumulation.

It runs unchanged in one process or under ``accelerate launch`` (each process takes every
world-th micro-batch; the effective batch is micro_batch x grad_accum x processes). Batch order is a
pure function of (seed, epoch), so a resumed run replays exactly the steps it had not done. Progress
goes to a callback; the loop never prints.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.errors import ConfigError
from crowguard.sanitize.checkpoint import TrainState, load_checkpoint, save_checkpoint
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.crow_loss import StepLoss, ce_loss, crow_loss, embedding_scale
from crowguard.sanitize.data import Example, collate
from crowguard.sanitize.lora import base_layer_count

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator
    from peft import PeftModel


@dataclass(frozen=True)
class Progress:
    """One finished optimiser step, as the progress display needs it."""

    step: int
    total_steps: int
    epoch: int
    ce: float
    lc: float | None
    lc_adv: float | None
    lr: float
    elapsed: float
    remaining: float


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class TrainResult:
    """What the loop did: steps, the per-step curve, the perturbation actually used."""

    steps: int
    total_steps: int
    curve: list[dict[str, Any]]
    seconds: float
    eps_used: float
    layer_pairs: tuple[int, int]
    resumed_from_step: int | None = None
    world_size: int = 1


@dataclass(frozen=True)
class StepPlan:
    """How the examples split into micro-batches and optimiser steps."""

    micro_batches_per_epoch: int  # per process
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def plan_steps(examples: int, config: SanitizeConfig, world: int = 1) -> StepPlan:
    """Micro-batches per process per epoch, optimiser steps, warm-up steps (HF Trainer's rounding)."""
    micro = math.ceil(math.ceil(examples / config.micro_batch) / world)
    per_epoch = math.ceil(micro / config.grad_accum)
    total = per_epoch * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    return StepPlan(micro, per_epoch, total, math.ceil(config.warmup_ratio * total))


def epoch_batches(examples: int, config: SanitizeConfig, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's micro-batches (example indices) for ``epoch``; every process gets as many."""
    order = list(range(examples))
    random.Random(config.seed * 1_000_003 + epoch).shuffle(order)
    batches = [order[i:i + config.micro_batch] for i in range(0, examples, config.micro_batch)]
    per_process = math.ceil(len(batches) / world)
    padded = batches + batches[:per_process * world - len(batches)]  # wrap around, as accelerate does
    return padded[rank::world]


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
) -> TrainResult:
    """Train the adapter in place; checkpoint every ``config.checkpoint_every`` steps when a folder is given."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    torch.manual_seed(config.seed)
    plan = plan_steps(len(examples), config, accelerator.num_processes)
    layers = base_layer_count(model)
    pairs = (config.layer_first, layers - 1 if config.layer_last is None else config.layer_last)
    if pairs[1] > layers:
        raise ConfigError(f"layer_last must be at most {layers} for this model, got {pairs[1]}",
                          hint=f"the model has {layers} decoder layers")
    eps = config.eps * embedding_scale(model) if config.eps_mode == "relative" else config.eps
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, plan.warmup_steps, plan.total_steps)

    state = TrainState(step=0, curve=[], fingerprint=fingerprint)
    resumed = None
    if resume and checkpoint_dir is not None:
        state, rng = load_checkpoint(checkpoint_dir, fingerprint=fingerprint, model=model, optimizer=optimizer,
                                     scheduler=scheduler)
        _set_rng(rng)
        resumed = state.step
    wrapped, optimizer = accelerator.prepare(model, optimizer)

    def step_loss(batch: dict[str, torch.Tensor]) -> StepLoss:
        if config.uses_consistency:
            return crow_loss(wrapped, batch, alpha=config.alpha, eps=eps, layer_first=pairs[0], layer_last=pairs[1],
                             embed_model=model)
        return ce_loss(wrapped, batch)

    curve = list(state.curve)
    started = time.monotonic()
    step = state.step
    while step < plan.total_steps:
        epoch, within = divmod(step, plan.steps_per_epoch)
        batches = epoch_batches(len(examples), config, epoch, accelerator.process_index, accelerator.num_processes)
        group = batches[within * config.grad_accum:(within + 1) * config.grad_accum]
        sums = _accumulate(group, examples, pad_id, accelerator, wrapped, step_loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        point = {"step": step, "epoch": epoch, "lr": lr, **sums}
        curve.append(point)
        if checkpoint_dir is not None and config.checkpoint_every and step % config.checkpoint_every == 0 \
                and step < plan.total_steps:
            if accelerator.is_main_process:
                save_checkpoint(checkpoint_dir, state=TrainState(step, curve, fingerprint), model=model,
                                optimizer=optimizer, scheduler=scheduler, rng=_get_rng())
            accelerator.wait_for_everyone()
        if callback is not None:
            elapsed = time.monotonic() - started
            done = step - state.step
            callback(Progress(step=step, total_steps=plan.total_steps, epoch=epoch, ce=sums["ce"],
                              lc=sums.get("lc"), lc_adv=sums.get("lc_adv"), lr=lr, elapsed=elapsed,
                              remaining=elapsed / done * (plan.total_steps - step)))
    return TrainResult(steps=step, total_steps=plan.total_steps, curve=curve, seconds=time.monotonic() - started,
                       eps_used=eps, layer_pairs=pairs, resumed_from_step=resumed,
                       world_size=accelerator.num_processes)


def _accumulate(group: list[list[int]], examples: list[Example], pad_id: int, accelerator: Accelerator,
                wrapped: torch.nn.Module, step_loss: Callable[[dict[str, torch.Tensor]], StepLoss]) -> dict[str, float]:
    """Forward and backward every micro-batch of one optimiser step; return the mean of each loss part."""
    import torch

    totals: dict[str, float] = {}
    for position, indices in enumerate(group):
        batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in indices], pad_id).items()}
        last = position == len(group) - 1
        with nullcontext() if last else accelerator.no_sync(wrapped):
            parts = step_loss(batch)
            accelerator.backward(parts.loss / len(group))
        for name in ("ce", "lc", "lc_adv"):
            value = getattr(parts, name)
            if value is not None:
                totals[name] = totals.get(name, 0.0) + value / len(group)
    if accelerator.num_processes > 1:
        names = sorted(totals)
        mean = accelerator.reduce(torch.tensor([totals[n] for n in names], device=accelerator.device), "mean")
        totals = dict(zip(names, mean.tolist()))
    return totals


def _get_rng() -> dict[str, torch.Tensor]:
    import torch

    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    return rng


def _set_rng(rng: dict[str, torch.Tensor]) -> None:
    import torch

    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
