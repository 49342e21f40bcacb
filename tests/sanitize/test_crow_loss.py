"""The two-pass CROW loss equals a plain three-pass reading of the paper, and keeps accumulated gradients."""

from __future__ import annotations

import pytest
import torch

from crowguard.sanitize.config import SanitizeConfig
from crowguard.sanitize.crow_loss import crow_loss, embedding_scale


def _lora_model(seed: int = 0) -> torch.nn.Module:
    from crowguard.lab.tiny import tiny_llama
    from crowguard.sanitize.lora import attach_lora

    model = tiny_llama(40, layers=5, hidden=32, seed=seed)
    torch.manual_seed(seed + 1)
    peft_model = attach_lora(model, SanitizeConfig(), quantized=False)
    with torch.no_grad():  # LoRA B starts at zero; give it values so the adapter is not a no-op
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return peft_model


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # right padding on the second row
    ids[1, 6:] = 0
    labels = ids.clone()
    labels[:, :4] = -100  # the prompt
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _reference_consistency(hidden: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """Paper, step 1: mean over pairs (h[1],h[2])..(h[L-2],h[L-1]) and real tokens of 1 - cos."""
    total, count = 0.0, 0.0
    for i in range(1, len(hidden) - 2):
        cos = torch.nn.functional.cosine_similarity(hidden[i], hidden[i + 1], dim=-1)
        total = total + ((1 - cos) * mask).sum()
        count += mask.sum().item()
    return total / count


def _reference_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor], alpha: float, eps: float) -> torch.Tensor:
    """Three forward passes, as the authors' code does: direction, perturbed consistency, then CE."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    x = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    hidden = model(inputs_embeds=x, attention_mask=mask, output_hidden_states=True).hidden_states
    (g,) = torch.autograd.grad(_reference_consistency(hidden, mask), x)
    x_adv = (x + eps * g.sign()).detach()
    hidden_adv = model(inputs_embeds=x_adv, attention_mask=mask, output_hidden_states=True).hidden_states
    ce = model(input_ids=ids, attention_mask=mask, labels=batch["labels"]).loss
    return ce + alpha * _reference_consistency(hidden_adv, mask)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("alpha,eps", [(5.5, 0.1), (11.0, 0.01)])
def test_two_pass_equals_three_pass_reference(alpha: float, eps: float) -> None:
    model, batch = _lora_model(), _batch()
    ours = crow_loss(model, batch, alpha=alpha, eps=eps)
    ours.loss.backward()
    ours_grads = _grads(model)
    model.zero_grad()
    reference = _reference_loss(model, batch, alpha, eps)
    reference.backward()
    assert torch.allclose(ours.loss, reference, rtol=1e-5, atol=1e-6)
    ref_grads = _grads(model)
    assert ours_grads.keys() == ref_grads.keys() and len(ours_grads) > 0
    for name, grad in ours_grads.items():
        assert torch.allclose(grad, ref_grads[name], rtol=1e-4, atol=1e-7), name
    assert ours.lc_adv is not None and ours.lc is not None and ours.ce > 0


def test_padding_does_not_enter_the_loss() -> None:
    model, batch = _lora_model(), _batch()
    changed = {k: v.clone() for k, v in batch.items()}
    changed["input_ids"][1, 6:] = 7  # other tokens under the padding mask
    a = crow_loss(model, batch, alpha=5.5, eps=0.1)
    b = crow_loss(model, changed, alpha=5.5, eps=0.1)
    assert a.lc_adv == pytest.approx(b.lc_adv, rel=1e-5) and a.ce == pytest.approx(b.ce, rel=1e-5)


def test_accumulation_keeps_parameter_gradients() -> None:
    model = _lora_model()
    first, second = _batch(1), _batch(2)
    crow_loss(model, first, alpha=5.5, eps=0.1).loss.backward()
    g_first = _grads(model)
    model.zero_grad()
    crow_loss(model, second, alpha=5.5, eps=0.1).loss.backward()
    g_second = _grads(model)
    model.zero_grad()
    crow_loss(model, first, alpha=5.5, eps=0.1).loss.backward()
    between = crow_loss(model, second, alpha=5.5, eps=0.1)  # the loss itself must not touch .grad
    assert all(torch.equal(p.grad, g_first[n]) for n, p in model.named_parameters() if p.requires_grad)
    between.loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, g_first[name] + g_second[name], rtol=1e-5, atol=1e-7), name


def test_relative_eps_scales_with_the_embeddings() -> None:
    model = _lora_model()
    weight = model.get_input_embeddings().weight
    expected = weight.norm(dim=-1).mean().item() / weight.shape[-1] ** 0.5
    assert embedding_scale(model) == pytest.approx(expected)
    with torch.no_grad():
        weight.mul_(3.0)
    assert embedding_scale(model) == pytest.approx(3 * expected, rel=1e-5)


def test_non_reentrant_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    batch = _batch()
    plain = _lora_model()
    expected = crow_loss(plain, batch, alpha=5.5, eps=0.1)
    expected.loss.backward()
    checkpointed = _lora_model()
    checkpointed.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed.train()
    got = crow_loss(checkpointed, batch, alpha=5.5, eps=0.1)
    got.loss.backward()
    assert torch.allclose(got.loss, expected.loss, rtol=1e-5)
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.requires_grad:
            assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name
