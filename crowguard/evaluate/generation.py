"""Batched greedy generation (left padding) and perplexity of reference responses."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from crowguard.data import Record
from crowguard.models.prompts import Template, format_prompt
from crowguard.progress import Tick

if TYPE_CHECKING:
    from crowguard.models import LoadedModel

"""Called with the number of items just finished."""


def prompt_texts(loaded: LoadedModel, records: tuple[Record, ...], template: Template) -> list[str]:
    """Each record's prompt in the chosen template."""
    return [format_prompt(loaded.tokenizer, r.instruction, r.input, template) for r in records]


def generate(loaded: LoadedModel, prompts: list[str], *, template: Template, max_new_tokens: int,
             batch_size: int, tick: Tick | None = None) -> list[str]:
    """Greedy continuations of ``prompts``, decoded without special tokens and stripped."""
    import torch
    from transformers import GenerationConfig

    tokenizer, model = loaded.tokenizer, loaded.model
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              pad_token_id=tokenizer.pad_token_id, eos_token_id=loaded.stop_ids() or None)
    previous_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            encoded = tokenizer(chunk, return_tensors="pt", padding=True,
                                add_special_tokens=template != "chat").to(loaded.device)
            with torch.inference_mode():
                # PreTrainedModel does not declare generate (GenerationMixin adds it per model class).
                generated = model.generate(**encoded, generation_config=config)  # type: ignore[operator]
            new = generated[:, encoded["input_ids"].shape[1]:]
            outputs += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
            if tick is not None:
                tick(len(chunk))
    finally:
        tokenizer.padding_side = previous_side
    return outputs


def perplexity(loaded: LoadedModel, records: tuple[Record, ...], *, template: Template, batch_size: int,
               max_length: int = 1024, tick: Tick | None = None) -> tuple[float | None, int]:
    """exp(mean NLL) of the records' reference outputs given their prompts, and the token count."""
    import torch

    tokenizer, model = loaded.tokenizer, loaded.model
    limit = min(max_length, getattr(model.config, "max_position_embeddings", max_length) or max_length)
    rows = []
    for record in records:
        if not record.output.strip():
            continue
        prompt = format_prompt(tokenizer, record.instruction, record.input, template)
        prompt_ids = tokenizer(prompt, add_special_tokens=template != "chat")["input_ids"]
        answer_ids = tokenizer(record.output, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:limit]
        labels = ([-100] * len(prompt_ids) + answer_ids)[:limit]
        if any(label != -100 for label in labels[1:]):
            rows.append((ids, labels))
    total_nll, total_tokens = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chunk], device=loaded.device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk], device=loaded.device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk], device=loaded.device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        shifted = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), shifted, ignore_index=-100,
                                                reduction="sum")
        total_nll += float(nll)
        total_tokens += int((shifted != -100).sum())
        if tick is not None:
            tick(len(chunk))
    if not total_tokens:
        return None, 0
    return math.exp(total_nll / total_tokens), total_tokens
