"""Wanda pruning, the ``--method prune`` baseline: zero the weights that matter least on clean inputs.

Wanda (Sun, Liu, Bair and Kolter, "A Simple and Effective Pruning Approach for Large Language
Models", 2023) scores each weight of a linear layer as ``|W_ij| * ||X_j||_2``, where ``X_j`` is the
j-th input feature over the calibration tokens, and zeroes, within each output row (the paper's
comparison group), the lowest-scoring ``sparsity`` share; no weight is updated. BackdoorLLM's
DefenseBox and the CROW paper use it as a backdoor-removal baseline. This follows the reference
implementation, locuslab/wanda ``lib/prune.py`` ``prune_wanda`` (unstructured branch; read at
commit 069ac97) and ``lib/layerwrapper.py`` ``WrappedGPT``: float32 sums of squared inputs per
feature, a stable sort of each row's scores, the first ``int(columns * sparsity)`` of them zeroed;
every ``nn.Linear`` (and GPT-2's ``Conv1D``) inside the decoder layers, never the embeddings or the
LM head.

Calibration is sequential, as in the reference: the inputs to decoder layer k are computed by layers
< k already pruned. One forward of the unpruned model records each example's input to the first layer
and the other arguments every layer is called with (masks, position embeddings: they depend on no
pruned weight); then each layer runs on its inputs once to measure them, is pruned, and runs again to
give the next layer its inputs. Examples run one at a time, unpadded, so no padding is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from crowguard.errors import ToolError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from crowguard.sanitize.data import Example

Call = tuple[tuple[Any, ...], dict[str, Any]]  # a layer's arguments after the hidden states, and its keywords


@dataclass(frozen=True)
class PruneResult:
    """What pruning did: the share asked for, what was pruned, the share of zeros measured after."""

    sparsity: float
    layers: int  # decoder layers pruned
    linears: int  # linear modules pruned
    weights: int  # weights in those modules
    zeroed: int  # zero weights in them afterwards, counted
    calibration_examples: int
    calibration_tokens: int
    seconds: float

    @property
    def zeroed_share(self) -> float:
        return self.zeroed / self.weights if self.weights else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for the sanitize stage's metrics."""
        return {**asdict(self), "zeroed_share": round(self.zeroed_share, 6), "seconds": round(self.seconds, 3)}


def wanda_mask(weight: torch.Tensor, sq_norms: torch.Tensor, sparsity: float) -> torch.Tensor:
    """True where a weight (``weight`` is out x in) is among its row's lowest ``sparsity`` share of scores.

    ``sq_norms`` holds each input feature's sum of squares over the calibration tokens.
    """
    import torch

    scores = weight.detach().abs().float() * sq_norms.float().sqrt().reshape(1, -1)
    count = int(weight.shape[1] * sparsity)
    lowest = torch.sort(scores, dim=-1, stable=True).indices[:, :count]
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, lowest, True)


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The model's stack of decoder layers: the module list as long as ``config.num_hidden_layers``."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count and any(linears(m) for m in module):
            return module
    raise ToolError(f"cannot find the decoder layers of this {type(model).__name__} (to prune, or to add a trigger "
                    "stand-in to)", hint="use --method crow or --method finetune for this model")


def linears(layer: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The layer's linear modules by name (``nn.Linear``, and GPT-2's ``Conv1D``, whose weight is in x out)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    return {name: m for name, m in layer.named_modules() if isinstance(m, torch.nn.Linear | Conv1D)}


def prune_model(model: PreTrainedModel, examples: list[Example], sparsity: float) -> PruneResult:
    """Prune ``model``'s decoder linears in place with Wanda, calibrated on ``examples``' token ids."""
    import torch

    started = time.monotonic()
    layers = decoder_layers(model)
    with torch.no_grad():
        hidden, calls = _record_calls(model, layers, examples)
        weights = zeroed = count = 0
        for index, layer in enumerate(layers):
            found = linears(layer)
            sq_norms = input_sq_norms(found, partial(_run_layer, layer, hidden, calls[index]))
            for name, module in found.items():
                size, zeros = prune_linear(module, sq_norms[name], sparsity)
                weights, zeroed = weights + size, zeroed + zeros
            count += len(found)
            hidden = _run_layer(layer, hidden, calls[index])
    return PruneResult(sparsity=sparsity, layers=len(layers), linears=count, weights=weights, zeroed=zeroed,
                       calibration_examples=len(examples), calibration_tokens=sum(len(e.input_ids) for e in examples),
                       seconds=time.monotonic() - started)


def prune_linear(module: torch.nn.Module, sq_norms: torch.Tensor, sparsity: float) -> tuple[int, int]:
    """Zero the module's weights that ``wanda_mask`` picks; return its weight count and its zeros after."""
    rows = _rows(module)
    rows[wanda_mask(rows, sq_norms, sparsity)] = 0
    return rows.numel(), int((rows == 0).sum())


def input_sq_norms(modules: dict[str, torch.nn.Module], run: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Each module's per-input-feature sum of squares (float32) over every token it sees while ``run`` runs."""
    import torch

    sums = {name: torch.zeros(_rows(m).shape[1], dtype=torch.float32, device=_rows(m).device)
            for name, m in modules.items()}

    def meter(name: str) -> Any:
        def hook(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().float()
            sums[name] += x.reshape(-1, x.shape[-1]).pow(2).sum(dim=0)
        return hook

    handles = [m.register_forward_pre_hook(meter(name)) for name, m in modules.items()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return sums


def _rows(module: torch.nn.Module) -> torch.Tensor:
    """The module's weight as out x in (a view: writing to it writes the weight)."""
    from transformers.pytorch_utils import Conv1D

    weight = cast("torch.Tensor", module.weight).data
    return weight.t() if isinstance(module, Conv1D) else weight


def _record_calls(model: PreTrainedModel, layers: torch.nn.ModuleList,
                  examples: list[Example]) -> tuple[list[torch.Tensor], list[list[Call]]]:
    """Each example's input to the first layer, and each layer's other arguments per example (one forward)."""
    import torch

    first: list[torch.Tensor] = []
    calls: list[list[Call]] = [[] for _ in layers]

    def recorder(index: int) -> Any:
        def hook(_: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if not args:
                raise ToolError("a decoder layer of this model takes its hidden states by keyword; prune cannot "
                                "call it", hint="use --method crow or --method finetune for this model")
            if index == 0:
                first.append(args[0])
            calls[index].append((args[1:], dict(kwargs)))
        return hook

    handles = [layer.register_forward_pre_hook(recorder(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        for example in examples:
            model(input_ids=torch.tensor([example.input_ids], device=model.device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return first, calls


def _run_layer(layer: torch.nn.Module, hidden: list[torch.Tensor], calls: list[Call]) -> list[torch.Tensor]:
    """The layer's output for each example's input, called as the model called it."""
    return [_output(layer(h, *args, **kwargs)) for h, (args, kwargs) in zip(hidden, calls)]


def _output(out: Any) -> torch.Tensor:
    """A decoder layer's hidden states (transformers 5 layers return the tensor; older ones a tuple)."""
    return out[0] if isinstance(out, tuple) else out
