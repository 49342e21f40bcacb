"""The CROW objective in two forward passes (../shared/CROW.md, "The loss, exactly").

1. Clean pass on the input embeddings ``x``: it yields the causal-LM loss on the response tokens
   and the hidden states, hence ``Lc(x)``.
2. ``g = d Lc / d x`` by ``torch.autograd.grad`` (parameter ``.grad`` fields are left untouched, so
   gradient accumulation works), then one FGSM step ``x_adv = x + eps * sign(g)``.
3. Perturbed pass on ``x_adv``: ``Lc_adv``; the loss is ``CE + alpha * Lc_adv``.

The authors' code needs a third pass for CE; with LoRA dropout 0 the clean pass already gives it.
The consistency is averaged over real tokens only (the attention mask is passed to both passes).
Two CE-only losses serve runs without the consistency term: the model's own token mean
(sanitize's ``finetune`` baseline, lab planting) and a per-example mean (lab models from scratch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crowguard.models.consistency import consistency_loss

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class StepLoss:
    """The differentiable total and its parts (detached) for logging."""

    loss: torch.Tensor
    ce: float
    lc: float | None = None
    lc_adv: float | None = None


def input_embeddings(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Embed ``input_ids`` so that a gradient with respect to the embeddings can be taken."""
    # nn.Module's __getattr__ types get_input_embeddings as Tensor | Module: the stubs cannot see the method.
    embeds = model.get_input_embeddings()(input_ids)  # type: ignore[operator]
    if not embeds.requires_grad:  # a frozen embedding table: make x a leaf of its own
        embeds = embeds.detach().requires_grad_(True)
    return embeds


def crow_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    *,
    alpha: float,
    eps: float,
    layer_first: int = 1,
    layer_last: int | None = None,
    embed_model: torch.nn.Module | None = None,
) -> StepLoss:
    """CE on clean response tokens plus ``alpha`` times the consistency loss under an FGSM step.

    ``model`` is called for both passes (it may be a DDP wrapper); ``embed_model`` (default
    ``model``) provides ``get_input_embeddings``.
    """
    import torch

    mask = batch["attention_mask"]
    x = input_embeddings(embed_model or model, batch["input_ids"])
    clean = model(inputs_embeds=x, attention_mask=mask, labels=batch["labels"], output_hidden_states=True)
    lc = consistency_loss(clean.hidden_states, mask, layer_first, layer_last)
    (direction,) = torch.autograd.grad(lc, x, retain_graph=True)
    x_adv = x + eps * direction.sign()
    # Only the hidden states of this pass are used: skip the vocabulary projection on all but one position.
    perturbed = model(inputs_embeds=x_adv, attention_mask=mask, output_hidden_states=True, logits_to_keep=1)
    lc_adv = consistency_loss(perturbed.hidden_states, mask, layer_first, layer_last)
    loss = clean.loss + alpha * lc_adv
    return StepLoss(loss=loss, ce=clean.loss.item(), lc=lc.item(), lc_adv=lc_adv.item())


def ce_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> StepLoss:
    """The plain-finetuning baseline: causal-LM loss on the response tokens, one pass."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return StepLoss(loss=out.loss, ce=out.loss.item())



def per_example_ce_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> StepLoss:
    """Causal-LM loss averaged per example, then over the batch, so long targets do not crowd out short answers."""
    import torch

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100,
                                                   reduction="none")
    counted = (targets != -100).float()
    loss = ((token_loss * counted).sum(1) / counted.sum(1).clamp_min(1.0)).mean()
    return StepLoss(loss=loss, ce=loss.item())

def embedding_scale(model: torch.nn.Module) -> float:
    """RMS entry size of the input embedding table: mean row norm / sqrt(width)."""
    import torch

    weight = model.get_input_embeddings().weight  # type: ignore[operator]  # nn.Module.__getattr__ typing
    with torch.no_grad():
        rows = weight.float().norm(dim=-1).mean().item()
    return rows / weight.shape[-1] ** 0.5
