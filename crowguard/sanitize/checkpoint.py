"""Resumable training state, written without pickle: safetensors for tensors, JSON for the rest.

A checkpoint folder holds the adapter weights, the AdamW moments, the scheduler state, the RNG
state of every process, the step reached, the curve so far, a fingerprint of the settings and
data, and what else the training carries along (the trigger stand-in's vectors, moments and
draws). Resuming with different settings or data is refused. Each save goes to a staged folder
that replaces the previous checkpoint whole, so a Ctrl-C during a save keeps the last good one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.atomic import staged_dir
from crowguard.errors import UsageError

if TYPE_CHECKING:
    import torch

STATE = "trainer_state.json"
ADAPTER = "adapter.safetensors"
OPTIMIZER = "optimizer.safetensors"
CARRIED = "carried.safetensors"


@dataclass(frozen=True)
class TrainState:
    """Where training stands after ``step`` optimiser steps."""

    step: int
    curve: list[dict[str, Any]]
    fingerprint: dict[str, Any]


def save_checkpoint(folder: Path, *, state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, rng: dict[str, torch.Tensor],
                    carried: dict[str, torch.Tensor] | None = None) -> None:
    """Replace ``folder`` with the current training state (main process only); ``carried``: tensors of state
    kept outside the model and optimiser."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    with staged_dir(folder, force=True) as tmp:
        adapter = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()}
        save_file(adapter, str(tmp / ADAPTER))
        tensors, groups = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / OPTIMIZER))
        save_file({k: v.cpu().contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
        if carried:
            save_file({k: v.detach().cpu().contiguous() for k, v in carried.items()}, str(tmp / CARRIED))
        payload = {"step": state.step, "curve": state.curve, "fingerprint": state.fingerprint,
                   "optimizer_param_groups": groups, "scheduler": _jsonable(scheduler.state_dict())}
        (tmp / STATE).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load_checkpoint(folder: Path, *, fingerprint: dict[str, Any], model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[TrainState, dict[str, torch.Tensor]]:
    """Restore adapter, optimiser and scheduler in place; return the state and the saved RNG tensors."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / STATE
    if not path.is_file():
        raise UsageError(f"no checkpoint to resume in {folder}", hint="run without --resume to start training")
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload["fingerprint"] != fingerprint:
        changed = sorted(k for k in set(fingerprint) | set(payload["fingerprint"])
                         if fingerprint.get(k) != payload["fingerprint"].get(k))
        raise UsageError(f"the checkpoint in {folder} was made with other settings or data ({', '.join(changed)})",
                         hint="resume with the same options and clean data, or use --force to start over")
    device = next(p.device for p in model.parameters())
    adapter = {k: v.to(device) for k, v in load_file(str(folder / ADAPTER)).items()}
    set_peft_model_state_dict(model, adapter)
    moments = load_file(str(folder / OPTIMIZER))
    optimizer.load_state_dict(_unflatten_optimizer(moments, payload["optimizer_param_groups"]))
    scheduler.load_state_dict(payload["scheduler"])
    rng = load_file(str(folder / "rng.safetensors"))
    return TrainState(step=payload["step"], curve=payload["curve"], fingerprint=fingerprint), rng


def load_carried(folder: Path) -> dict[str, torch.Tensor]:
    """The carried tensors of the checkpoint in ``folder`` (none if it kept none)."""
    from safetensors.torch import load_file

    path = folder / CARRIED
    return load_file(str(path)) if path.is_file() else {}


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    import torch

    tensors = {}
    for index, slots in state_dict["state"].items():
        for name, value in slots.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{name}"] = tensor.detach().cpu().contiguous()
    return tensors, _jsonable(state_dict["param_groups"])


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = tensor
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None  # callables such as a scheduler's lr_lambdas are rebuilt, not saved
