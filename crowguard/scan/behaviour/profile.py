"""The consistency profile: cos(h[i], h[i+1]) per layer pair, at the last prompt positions and on average.

For each sequence the profile is a (pairs, positions + 1) matrix: the layer-to-layer cosine at each of
the last ``positions`` prompt tokens (counted from the end: where the model decides what to answer),
and, in the last column, its mean over all real tokens. Pairs run from (h[0], h[1]) to
(h[L-2], h[L-1]); the normed last output h[L] is left out, as in CROW. Sequences are left-padded so
that the end positions line up. The same forward also gives the next-token distribution at the last
prompt token, from which the output change (KL divergence from the plain probe) is measured.

Many insertions into one probe at the same place share everything before that place, and in a causal
model the hidden states there do not depend on what follows. ``run_shared_prefix`` runs that prefix
once and only the tails (insert and rest of the prompt) per candidate, from the prefix's key/value
cache: the same numbers for a fraction of the work when candidates go at the end or in the middle.
Each prefix is run once per scan and its cache kept (copied for every batch of tails).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.models.consistency import layer_cosines
from crowguard.progress import Tick

if TYPE_CHECKING:
    import torch
    from transformers import Cache

GQA_SWITCH = "TRANSFORMERS_SDPA_FORCE_GQA"
MAX_HEADS = 128  # prefixes kept (a scan uses at most (search + verification probes) x 3 positions)


@dataclass
class Profiles:
    """Profiles of a batch of sequences and their next-token log-probabilities (or KL to a baseline)."""

    features: torch.Tensor  # (sequences, pairs, positions + 1)
    next_token: torch.Tensor  # (sequences, vocabulary) log-probs, or (sequences,) KL when a baseline was given
    top_token: torch.Tensor  # (sequences,) greedy next token
    top_prob: torch.Tensor  # (sequences,) its probability


class _Collector:
    """Accumulates per-chunk results into one ``Profiles``."""

    def __init__(self, baseline: torch.Tensor | None) -> None:
        self.baseline = baseline
        self.parts: list[tuple[torch.Tensor, ...]] = []
        self.done = 0

    def add(self, features: torch.Tensor, logprobs: torch.Tensor) -> None:
        top_logprob, top = logprobs.max(-1)
        if self.baseline is None:
            nexts = logprobs
        else:
            nexts = kl_divergence(self.baseline[self.done:self.done + len(logprobs)].to(logprobs.device), logprobs)
        self.parts.append((features.cpu(), nexts.cpu(), top.cpu(), top_logprob.exp().cpu()))
        self.done += len(logprobs)

    def profiles(self) -> Profiles:
        import torch

        features, nexts, tops, probs = (torch.cat(column) for column in zip(*self.parts))
        return Profiles(features=features, next_token=nexts, top_token=tops, top_prob=probs)


class ProfileRunner:
    """Runs a causal LM on token-id sequences and returns their consistency profiles."""

    def __init__(self, model: torch.nn.Module, *, pad_id: int, device: str, positions: int, batch_size: int) -> None:
        self.model = model
        self.pad_id = pad_id
        self.device = device
        self.positions = positions
        self.batch_size = batch_size
        self.sequences_run = 0
        self.cache_argument = cache_argument(model)
        self._heads: dict[tuple[int, ...], tuple[Cache, torch.Tensor]] = {}  # prefix -> its cache and cosines

    def run(self, sequences: Sequence[Sequence[int]], *, baseline: torch.Tensor | None = None,
            tick: Tick | None = None) -> Profiles:
        """Profiles of ``sequences``; with ``baseline`` (log-probs per sequence) the KL to it, not the log-probs."""
        import torch

        collected = _Collector(baseline)
        for start in range(0, len(sequences), self.batch_size):
            chunk = sequences[start:start + self.batch_size]
            ids, mask = self.pad(chunk)
            with torch.inference_mode():
                collected.add(*self.forward(mask, input_ids=ids))
            self._count(len(chunk), tick)
        return collected.profiles()

    def run_shared_prefix(self, prefix: Sequence[int], tails: Sequence[Sequence[int]], *,
                          baseline: torch.Tensor | None = None, tick: Tick | None = None) -> Profiles:
        """Profiles of ``prefix + tail`` for every tail, running the prefix once (tails of one length)."""
        import copy

        import torch

        if len({len(t) for t in tails}) != 1 or not prefix:
            raise ValueError("run_shared_prefix needs a non-empty prefix and tails of one length")
        collected = _Collector(baseline)
        with torch.inference_mode():
            head_cache, head_cos = self._head(tuple(prefix))
            total = len(prefix) + len(tails[0])
            positions = torch.arange(len(prefix), total, device=self.device)
            for start in range(0, len(tails), self.batch_size):
                chunk = torch.tensor([list(t) for t in tails[start:start + self.batch_size]], device=self.device)
                cache = copy.deepcopy(head_cache)
                cache.batch_repeat_interleave(len(chunk))
                out = self.model(input_ids=chunk, use_cache=True, output_hidden_states=True,
                                 position_ids=positions.expand(len(chunk), -1), logits_to_keep=1,
                                 **{self.cache_argument: cache})
                tail_cos = layer_cosines(out.hidden_states, 0, len(out.hidden_states) - 2)  # (pairs, batch, tail)
                cos = torch.cat([head_cos.unsqueeze(1).expand(-1, len(chunk), -1), tail_cos], dim=-1)
                features = torch.cat([cos[:, :, -self.positions:], (cos.sum(-1) / total).unsqueeze(-1)], -1)
                collected.add(features.permute(1, 0, 2), out.logits[:, -1].float().log_softmax(-1))
                self._count(len(chunk), tick)
        return collected.profiles()

    def _head(self, prefix: tuple[int, ...]) -> tuple[Cache, torch.Tensor]:
        """The prefix's key/value cache and layer cosines (pairs, prefix), computed once per prefix: a scan
        runs the same few dozen probe prefixes (each probe cut at each position) again and again."""
        import torch

        if prefix not in self._heads:
            if len(self._heads) >= MAX_HEADS:
                self._heads.pop(next(iter(self._heads)))
            head = self.model(input_ids=torch.tensor([list(prefix)], device=self.device), use_cache=True,
                              output_hidden_states=True, logits_to_keep=1)
            self._heads[prefix] = (cache_of(head), layer_cosines(head.hidden_states, 0,
                                                                  len(head.hidden_states) - 2)[:, 0])
        return self._heads[prefix]

    def _count(self, count: int, tick: Tick | None) -> None:
        self.sequences_run += count
        if tick is not None:
            tick(count)

    def pad(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and attention mask on the runner's device."""
        import torch

        width = max(len(s) for s in sequences)
        ids = torch.tensor([[self.pad_id] * (width - len(s)) + list(s) for s in sequences], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=self.device)
        return ids, mask

    def forward(self, mask: torch.Tensor, *, input_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Profiles (batch, pairs, positions + 1) and last-token log-probs; differentiable in ``inputs_embeds``."""
        positions = positions_of(mask)
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=mask,
                         position_ids=positions, output_hidden_states=True, use_cache=False, logits_to_keep=1)
        return profile_features(out.hidden_states, mask, self.positions), out.logits[:, -1].float().log_softmax(-1)


def profile_features(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor, positions: int) -> torch.Tensor:
    """(batch, pairs, positions + 1): cosines at the last ``positions`` tokens, then the mean over real tokens."""
    import torch

    cos = layer_cosines(hidden_states, 0, len(hidden_states) - 2)  # (pairs, batch, tokens)
    weights = mask.to(cos.dtype).unsqueeze(0)
    mean = (cos * weights).sum(-1) / weights.sum(-1).clamp_min(1.0)
    return torch.cat([cos[:, :, -positions:], mean.unsqueeze(-1)], dim=-1).permute(1, 0, 2)


@contextmanager
def grouped_attention(device: str) -> Iterator[None]:
    """On a CPU, attention reads a grouped-query model's key/value heads as they are.

    transformers copies each key/value head once per query head it serves (``repeat_kv``) whenever an
    attention mask is given, which every scan batch has (on SmolLM2, 3 key/value heads for 9; with the
    layer cosines' rewrite, 3-18% off a scan's forwards: bench/RESULTS.md#scan-engine). torch's CPU
    kernel takes the groups directly (``enable_gqa``) and gives the same numbers; transformers turns that
    on under this switch. On CUDA a mask with ``enable_gqa`` falls back to a slow kernel, so there the
    switch stays as it is.
    """
    if device != "cpu" or os.environ.get(GQA_SWITCH) is not None:
        yield
        return
    os.environ[GQA_SWITCH] = "1"
    try:
        yield
    finally:
        os.environ.pop(GQA_SWITCH, None)


@contextmanager
def contiguous_head(model: torch.nn.Module) -> Iterator[None]:
    """The output head reads the last position's hidden state as one contiguous block.

    Asked for the last position's logits only (``logits_to_keep=1``, every scan forward), transformers
    hands the head a strided slice of the hidden states; torch multiplies a strided 3-D input by
    batched matrix products that read the whole (vocabulary x width) head once per sequence. On
    SmolLM2 (49,152 x 576) that took a quarter of the ranking's time on one CPU thread, 15 times the
    cost of the same product on a contiguous copy (bench/RESULTS.md#contiguous-head). The numbers are
    the same up to float rounding.
    """
    import torch

    # nn.Module's __getattr__ types the method as Tensor | Module: the stubs cannot see it (as in search.py)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None  # type: ignore[operator]
    if not isinstance(head, torch.nn.Module):
        yield
        return
    handle = head.register_forward_pre_hook(_contiguous_input)
    try:
        yield
    finally:
        handle.remove()


def _contiguous_input(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (args[0].contiguous(), *args[1:]) if args else args


def kl_divergence(base: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """KL(base || other) per row, both given as log-probabilities."""
    return (base.exp() * (base - other)).sum(-1).clamp_min(0.0)


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of left-padded rows: each real token counts from 0, padding sits at 0."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def cache_argument(model: torch.nn.Module) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` during 5.x; use what this version takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(output: object) -> Cache:
    found = getattr(output, "cache", None)
    return found if found is not None else output.past_key_values  # type: ignore[attr-defined]
