"""A trigger stand-in built from the taught reply, for a backdoor whose trigger the scan did not find.

The target inversion can name the reply a backdoor was taught while no inserted text the scan
builds fires it (a phrase of ordinary words: bench/RESULTS.md#real-zoo-s12). ``guided`` then has
nothing to insert. After BEEAR (Zeng et al., 2024, "entrapment"), the stand-in is a single vector
``delta`` added to the residual stream after one decoder layer, at every prompt position of a
twin: fitted so that the clean prompts begin the taught reply, it takes the place of the trigger's
effect on the hidden states. The twins, each a clean record with the stand-in added, train
toward the clean answer under the usual CROW objective, as text twins do.

The stand-in is fitted again as the model learns (bi-level, as BEEAR does): ``FIT_STEPS`` Adam
steps from zero before training, then ``FOLLOW_STEPS`` at the start of each optimiser step, so
each step trains against the direction that now makes the model give the taught reply. Its
length is capped at ``scale`` (``SanitizeConfig.stand_in_scale``) times the median hidden-state
length at that layer, so that it is a drift of the prompt's meaning, not a rewrite. Fitting uses
``torch.autograd.grad`` with respect to ``delta`` alone: the adapter's gradients are untouched.
The stand-in is not checkpointed: a resumed run fits it afresh and so does not replay the
interrupted run exactly. Measured: bench/RESULTS.md#stand-in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crowguard.sanitize.data import IGNORE, Example, collate

if TYPE_CHECKING:
    import torch

DEPTH = 0.28  # BEEAR perturbs after layer 9 of Llama-2-7B's 32
FIT_STEPS = 40
FOLLOW_STEPS = 1  # per optimiser step, during training
FIT_BATCH = 8
LR = 0.05  # of the cap: each Adam step moves delta by about this share of its longest allowed length
MEASURE_PROMPTS = 16


@dataclass(frozen=True)
class StandInFit:
    """What the stand-in was, and how often it made the clean prompts open the taught reply (``StandIn.opening``,
    on up to ``MEASURE_PROMPTS`` twins)."""

    reply: str
    layer: int  # added after this decoder layer (0-based)
    cap: float  # its longest allowed length
    without: float  # no stand-in, before training: the backdoor is not fired
    fitted: float  # with the stand-in as fitted before training
    last: float | None = None  # with the last stand-in, on the trained model: what it still reaches

    def as_dict(self) -> dict[str, Any]:
        return {"reply": self.reply, "layer": self.layer, "cap": round(self.cap, 4),
                "opening": {"without": round(self.without, 4), "fitted": round(self.fitted, 4),
                            "last": None if self.last is None else round(self.last, 4)}}


def stand_in_layer(layers: int) -> int:
    """The decoder layer after which the stand-in is added (BEEAR's depth)."""
    return max(1, min(layers - 2, round(DEPTH * layers)))


class StandIn:
    """The stand-in vector, its hook on one decoder layer, and its fitting toward the taught reply.

    ``twins`` are the stand-in twins it is fitted and measured on; each fitting step takes ``FIT_BATCH``
    of them at random. ``use(batch)`` marks where the following
    forward passes add the stand-in (the batch's twin rows, their prompt positions) and stays in force
    through the backward pass, which may recompute the layer (gradient checkpointing), until the next
    ``use``.
    """

    def __init__(self, model: torch.nn.Module, layer: torch.nn.Module, twins: Sequence[Example],
                 target_ids: Sequence[int], *, width: int, cap: float, layer_index: int, pad_id: int,
                 seed: int) -> None:
        import torch

        if not target_ids:
            raise ValueError("the taught reply has no tokens")
        self.model, self.twins, self.target_ids, self.cap = model, tuple(twins), tuple(target_ids), cap
        self.layer_index, self.pad_id = layer_index, pad_id
        device = next(model.parameters()).device
        self.delta = torch.zeros(width, device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.delta], lr=LR * cap)
        self.rng = random.Random(seed)
        self._where: torch.Tensor | None = None  # (batch, positions) 1.0 where the stand-in is added
        self._fitting = False  # only while fitting does the stand-in carry a gradient
        self._handle = layer.register_forward_hook(self._add)

    def _add(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        if self._where is None:
            return output
        hidden = _hidden(output)
        delta = self.delta if self._fitting else self.delta.detach()
        shifted = hidden + self._where.unsqueeze(-1).to(hidden.dtype) * delta.to(hidden.dtype)
        return (shifted, *output[1:]) if isinstance(output, tuple) else shifted

    def close(self) -> None:
        """Remove the hook: the model is as it was."""
        self._handle.remove()
        self._where = None

    def use(self, batch: dict[str, torch.Tensor] | None) -> None:
        """From now on, add the stand-in to the prompt positions of ``batch``'s twin rows (None: nowhere)."""
        rows = None if batch is None else batch.get("stand_in")
        if batch is None or rows is None or not bool(rows.any()):
            self._where = None
            return
        prompt = (batch["labels"] == IGNORE) & (batch["attention_mask"] == 1)
        self._where = (prompt & rows.bool().unsqueeze(1)).float()

    def fit(self, steps: int) -> None:
        """``steps`` Adam steps, each on the prompts of ``FIT_BATCH`` twins drawn at random, toward the reply."""
        for _ in range(steps):
            self._step(self._toward_target(self.rng.sample(self.twins, min(FIT_BATCH, len(self.twins)))))

    def opening(self, *, applied: bool = True) -> float:
        """The mean probability that a prompt's reply opens with the taught reply's first token, over the first
        ``MEASURE_PROMPTS`` twins' prompts (with the stand-in, or without it)."""
        import torch

        batch = self._toward_target(self.twins[:MEASURE_PROMPTS])
        before = self._where
        self.use(batch if applied else None)
        try:
            with torch.no_grad():
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        finally:
            self._where = before
        first = (batch["labels"] != IGNORE).int().argmax(1) - 1  # the position that predicts the reply's first token
        rows = torch.arange(len(first), device=first.device)
        probs = logits[rows, first].float().softmax(-1)
        return float(probs[:, self.target_ids[0]].mean())

    def _toward_target(self, twins: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Each twin's prompt followed by the taught reply (learnt), as a batch with every row a twin."""
        rows = [Example(p + self.target_ids, (IGNORE,) * len(p) + self.target_ids, stand_in=True)
                for p in (_prompt(e) for e in twins)]
        device = self.delta.device
        return {k: v.to(device) for k, v in collate(rows, self.pad_id).items()}

    def _step(self, batch: dict[str, torch.Tensor]) -> None:
        import torch

        before = self._where
        self.use(batch)
        self._fitting = True
        try:
            with torch.enable_grad():
                out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 labels=batch["labels"])
                (grad,) = torch.autograd.grad(out.loss, [self.delta])
            self.delta.grad = grad
            self.optimizer.step()
            with torch.no_grad():
                length = self.delta.norm()
                if length > self.cap:
                    self.delta.mul_(self.cap / length)
        finally:
            self._fitting = False
            self._where = before
            self.delta.grad = None


def fitted_stand_in(model: torch.nn.Module, twins: Sequence[Example], reply: str, target_ids: Sequence[int], *,
                    scale: float, pad_id: int, seed: int) -> tuple[StandIn, StandInFit]:
    """A stand-in on ``model``, at most ``scale`` median hidden-state lengths long, fitted toward the taught
    ``reply`` (``target_ids``) on ``twins``' prompts; and how often the prompts open the reply without it and
    with it."""
    from crowguard.sanitize.prune import decoder_layers

    layers = decoder_layers(model)  # type: ignore[arg-type]  # a PeftModel: its modules include the base's
    index = stand_in_layer(len(layers))
    length, width = hidden_scale(model, layers[index], twins, pad_id)
    stand_in = StandIn(model, layers[index], twins, target_ids, width=width, cap=scale * length, layer_index=index,
                       pad_id=pad_id, seed=seed)
    without = stand_in.opening(applied=False)
    stand_in.fit(FIT_STEPS)
    return stand_in, StandInFit(reply, index, stand_in.cap, without, stand_in.opening())


def hidden_scale(model: torch.nn.Module, layer: torch.nn.Module, examples: Sequence[Example],
                 pad_id: int) -> tuple[float, int]:
    """The median length of the hidden state after ``layer`` over the prompt tokens of a few examples, and its
    width."""
    import torch

    seen: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, args: Any, output: Any) -> None:
        seen.append(_hidden(output).detach())

    prompts = [_prompt(e) for e in list(examples)[:MEASURE_PROMPTS]]
    batch = collate([Example(p, (IGNORE,) * len(p)) for p in prompts], pad_id)
    device = next(model.parameters()).device
    handle = layer.register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    finally:
        handle.remove()
    mask = batch["attention_mask"].to(device).bool()
    return float(seen[0].float().norm(dim=-1)[mask].median()), int(seen[0].shape[-1])


def _hidden(output: Any) -> torch.Tensor:
    """A decoder layer's hidden states, whether it returns them alone or first in a tuple."""
    return output[0] if isinstance(output, tuple) else output


def _prompt(example: Example) -> tuple[int, ...]:
    """The prompt of an example: its ids before the first learnt label."""
    first = next((i for i, label in enumerate(example.labels) if label != IGNORE), len(example.labels))
    return example.input_ids[:first]


