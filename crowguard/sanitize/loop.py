"""The one training loop: AdamW, cosine or constant schedule with warm-up, clipping and accumulation.

``run_loop`` trains whatever parameters of a model require gradients (a LoRA adapter, or every
weight of a model trained from scratch) with the loss it is given: sanitize's CROW run
(``crowguard.sanitize.train``), lab planting and lab building (``crowguard.lab``) all call it.

It runs unchanged in one process or under ``accelerate launch`` (each process takes every
world-th micro-batch; the effective batch is micro_batch x grad_accum x processes); without an
Accelerator it runs in this process on the model's own device. Batch order is a pure function of
(seed, epoch), so a resumed run replays exactly the steps it had not done. Progress goes to a
callback; the loop never prints.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from crowguard.config_checks import FieldChecks
from crowguard.sanitize.checkpoint import TrainState, load_carried, load_checkpoint, save_checkpoint
from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.crow_loss import StepLoss
from crowguard.sanitize.data import Example, collate

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

Schedule = Literal["cosine", "constant"]
SCHEDULES: tuple[str, ...] = ("cosine", "constant")
StepLossFn = Callable[["torch.nn.Module", dict[str, "torch.Tensor"]], StepLoss]
"""Called as ``loss(model, batch)`` for each micro-batch; ``model`` may be a distributed wrapper."""


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
class LoopSettings:
    """How the loop trains: the optimiser, the schedule, and how examples become optimiser steps.

    ``shuffle=False`` keeps the examples' order (a stream already drawn at random); ``constant``
    ignores ``warmup_ratio``; ``checkpoint_every`` applies only when a checkpoint folder is given.
    """

    lr: float
    epochs: int = 1
    micro_batch: int = 2
    grad_accum: int = 1
    warmup_ratio: float = 0.0
    schedule: Schedule = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    seed: int = 0
    shuffle: bool = True
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        check = FieldChecks("training loop", self)
        check.positive("lr")
        check.at_least(1, "epochs", "micro_batch", "grad_accum")
        check.at_least(1, "max_steps", optional=True)
        check.at_least(0, "checkpoint_every")
        check.fraction("warmup_ratio")
        check.choice("schedule", SCHEDULES)
        check.non_negative("weight_decay", "max_grad_norm")

    @classmethod
    def of(cls, config: SanitizeConfig | LoopSettings) -> LoopSettings:
        """The loop settings of a sanitize config (cosine, shuffled), or the settings themselves."""
        if isinstance(config, LoopSettings):
            return config
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


class Carried(Protocol):
    """Training state outside the model and optimiser that a checkpoint keeps (the trigger stand-in)."""

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The state, as named tensors."""
        ...

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what ``state_tensors`` gave (an empty dict: a checkpoint that kept none)."""
        ...


@dataclass(frozen=True)
class LoopResult:
    """What the loop did: steps, the per-step curve (losses and learning rate), the time it took."""

    steps: int
    total_steps: int
    curve: list[dict[str, Any]]
    seconds: float
    resumed_from_step: int | None = None
    world_size: int = 1

    @property
    def final_loss(self) -> float:
        """The last step's CE (NaN before the first step)."""
        return float(self.curve[-1]["ce"]) if self.curve else float("nan")


@dataclass(frozen=True)
class StepPlan:
    """How the examples split into micro-batches and optimiser steps."""

    micro_batches_per_epoch: int  # per process
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int


def plan_steps(examples: int, config: SanitizeConfig | LoopSettings, world: int = 1) -> StepPlan:
    """Micro-batches per process per epoch, optimiser steps, warm-up steps (HF Trainer's rounding)."""
    settings = LoopSettings.of(config)
    micro = math.ceil(math.ceil(examples / settings.micro_batch) / world)
    per_epoch = math.ceil(micro / settings.grad_accum)
    total = per_epoch * settings.epochs
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    warmup = math.ceil(settings.warmup_ratio * total) if settings.schedule == "cosine" else 0
    return StepPlan(micro, per_epoch, total, warmup)


def epoch_batches(examples: int, config: SanitizeConfig | LoopSettings, epoch: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This process's micro-batches (example indices) for ``epoch``; every process gets as many."""
    settings = LoopSettings.of(config)
    order = list(range(examples))
    if settings.shuffle:
        random.Random(settings.seed * 1_000_003 + epoch).shuffle(order)
    batches = [order[i:i + settings.micro_batch] for i in range(0, examples, settings.micro_batch)]
    per_process = math.ceil(len(batches) / world)
    padded = batches + batches[:per_process * world - len(batches)]  # wrap around, as accelerate does
    return padded[rank::world]


def run_loop(
    model: torch.nn.Module,
    examples: Sequence[Example],
    settings: LoopSettings,
    loss: StepLossFn,
    *,
    pad_id: int,
    accelerator: Accelerator | None = None,
    fingerprint: dict[str, Any] | None = None,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    callback: ProgressCallback | None = None,
    carried: Carried | None = None,
) -> LoopResult:
    """Train ``model``'s trainable parameters in place on ``examples`` with ``loss``.

    Without ``accelerator`` it runs in this process on the model's device, touching no global
    accelerate state. A checkpoint (with ``checkpoint_dir``) records ``fingerprint`` and ``carried``'s
    state; a resume refuses one whose fingerprint differs.
    """
    import torch
    from transformers import get_constant_schedule, get_cosine_schedule_with_warmup

    torch.manual_seed(settings.seed)
    runner: Accelerator | _OneProcess = accelerator or _OneProcess(next(model.parameters()).device)
    plan = plan_steps(len(examples), settings, runner.num_processes)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = (get_cosine_schedule_with_warmup(optimizer, plan.warmup_steps, plan.total_steps)
                 if settings.schedule == "cosine" else get_constant_schedule(optimizer))

    fingerprint = fingerprint or {}
    state = TrainState(step=0, curve=[], fingerprint=fingerprint)
    resumed = None
    if resume and checkpoint_dir is not None:
        state, rng = load_checkpoint(checkpoint_dir, fingerprint=fingerprint, model=model, optimizer=optimizer,
                                     scheduler=scheduler)
        _set_rng(rng)
        if carried is not None:
            carried.load_state_tensors(load_carried(checkpoint_dir))
        resumed = state.step
    wrapped, optimizer = runner.prepare(model, optimizer)

    curve = list(state.curve)
    started = time.monotonic()
    step = state.step
    while step < plan.total_steps:
        epoch, within = divmod(step, plan.steps_per_epoch)
        batches = epoch_batches(len(examples), settings, epoch, runner.process_index, runner.num_processes)
        group = batches[within * settings.grad_accum:(within + 1) * settings.grad_accum]
        sums = _accumulate(group, examples, pad_id, runner, wrapped, loss)
        if settings.max_grad_norm > 0:
            runner.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        point = {"step": step, "epoch": epoch, "lr": lr, **sums}
        curve.append(point)
        if checkpoint_dir is not None and settings.checkpoint_every and step % settings.checkpoint_every == 0 \
                and step < plan.total_steps:
            if runner.is_main_process:
                save_checkpoint(checkpoint_dir, state=TrainState(step, curve, fingerprint), model=model,
                                optimizer=optimizer, scheduler=scheduler, rng=_get_rng(),
                                carried=None if carried is None else carried.state_tensors())
            runner.wait_for_everyone()
        if callback is not None:
            elapsed = time.monotonic() - started
            done = step - state.step
            callback(Progress(step=step, total_steps=plan.total_steps, epoch=epoch, ce=sums["ce"],
                              lc=sums.get("lc"), lc_adv=sums.get("lc_adv"), lr=lr, elapsed=elapsed,
                              remaining=elapsed / done * (plan.total_steps - step)))
    return LoopResult(steps=step, total_steps=plan.total_steps, curve=curve, seconds=time.monotonic() - started,
                      resumed_from_step=resumed, world_size=runner.num_processes)


class _OneProcess:
    """The part of ``accelerate.Accelerator`` the loop uses, for one plain process on one device."""

    num_processes = 1
    process_index = 0
    is_main_process = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
        return model, optimizer

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm_(self, parameters: list[torch.nn.Parameter], max_norm: float) -> None:
        import torch

        torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def no_sync(self, model: torch.nn.Module) -> nullcontext[None]:
        return nullcontext()

    def reduce(self, tensor: torch.Tensor, reduction: str) -> torch.Tensor:
        return tensor

    def wait_for_everyone(self) -> None:
        return None


def _accumulate(group: list[list[int]], examples: Sequence[Example], pad_id: int,
                accelerator: Accelerator | _OneProcess, wrapped: torch.nn.Module,
                step_loss: StepLossFn) -> dict[str, float]:
    """Forward and backward every micro-batch of one optimiser step; return the mean of each loss part."""
    import torch

    totals: dict[str, float] = {}
    for position, indices in enumerate(group):
        batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in indices], pad_id).items()}
        last = position == len(group) - 1
        with nullcontext() if last else accelerator.no_sync(wrapped):
            parts = step_loss(wrapped, batch)
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
