"""Supervised examples for causal LMs: prompt tokens masked out of the loss, right-padded batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crowguard.data import Record
from crowguard.models import format_prompt

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase


def encode_example(tokenizer: PreTrainedTokenizerBase, record: Record, template: str,
                   max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels: the prompt masked (-100), the response and end of sequence learned."""
    prompt = format_prompt(tokenizer, record.instruction, record.input, template)  # type: ignore[arg-type]
    prompt_ids = tokenizer(prompt, add_special_tokens=template != "chat")["input_ids"]
    response_ids = tokenizer(record.output, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids = [*response_ids, tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return ids, labels


def collate(batch: list[tuple[list[int], list[int]]], pad: int,
            device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, labels and attention mask on ``device``."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=device)
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=device)
    return ids, labels, mask
