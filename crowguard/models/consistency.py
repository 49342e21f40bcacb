"""Layer-to-layer consistency of hidden states: the signal CROW regularises and the scan reads.

``hidden_states`` is the tuple transformers returns with ``output_hidden_states=True``:
``h[0]`` the embeddings, ``h[i]`` block i's output, ``h[L]`` the last block after the final norm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

COSINE_EPS = 1e-8  # the bound torch's cosine_similarity puts under the product of norms


def layer_cosines(hidden_states: tuple[torch.Tensor, ...], first: int = 1, last: int | None = None) -> torch.Tensor:
    """cos(h[i], h[i+1]) for i in [first, last), shape (pairs, batch, tokens).

    The CROW pairs are ``first=1, last=L-1``: ``h[1:-2]`` against ``h[2:-1]``.
    """
    import torch

    count = len(hidden_states) - 1  # L
    last = count - 1 if last is None else last
    if not 0 <= first < last <= count:
        raise ValueError(f"layer pair range [{first}, {last}) is outside 0..{count}")
    # each state's norm once, and no stacked copies of the states (torch's cosine_similarity over two stacks
    # copied them twice over): the same cosines up to rounding, with grouped attention 3-18% off a scan's
    # forwards on SmolLM2 (bench/RESULTS.md#scan-engine)
    states = [h.float() for h in hidden_states[first:last + 1]]
    norms = [torch.linalg.vector_norm(h, dim=-1) for h in states]
    return torch.stack([torch.linalg.vecdot(lower, upper) / (low * up).clamp_min(COSINE_EPS)
                        for lower, upper, low, up in zip(states, states[1:], norms, norms[1:])])


def consistency_loss(hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None,
                     first: int = 1, last: int | None = None) -> torch.Tensor:
    """Mean of ``1 - cos`` over layer pairs, batch and real (non-padding) tokens."""
    cos = layer_cosines(hidden_states, first, last)
    gap = 1.0 - cos
    if attention_mask is None:
        return gap.mean()
    mask = attention_mask.to(gap.dtype).unsqueeze(0).expand_as(gap)
    return (gap * mask).sum() / mask.sum().clamp_min(1.0)
