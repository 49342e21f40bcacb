"""The clean set CROW trains on: Alpaca records chosen reproducibly, or answers the model gives itself.

Each record becomes ``input_ids`` and ``labels`` with the prompt masked (-100), formatted with the
model's chat template when it has one and the Alpaca template otherwise. Without a clean data file,
crowguard asks the model to answer its own shipped instructions (greedy, no trigger present): a
self-distilled set that keeps the model's behaviour while CROW smooths its layers.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from crowguard.data import Record, load_records
from crowguard.errors import ConfigError
from crowguard.models.prompts import Template, format_prompt, has_chat_template, user_message

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

IGNORE = -100
DISTILL_BATCH = 8


@dataclass(frozen=True)
class Example:
    """One tokenised training example; ``labels`` is -100 on the prompt; ``stand_in``: a twin that trains with
    the trigger stand-in in its prompt (``crowguard.sanitize.stand_in``): soft tokens from position
    ``stand_in_at`` on, or (-1) a shift of every prompt position."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    stand_in: bool = False
    stand_in_at: int = -1


@dataclass(frozen=True)
class CleanSet:
    """The records trained on, how they were obtained, and their digest (for resume checks)."""

    records: tuple[Record, ...]
    source: str  # a file path, or "self-distilled"
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        text = json.dumps([[r.instruction, r.input, r.output] for r in self.records], ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "samples": len(self.records), "sha256": self.digest, **self.details}


def choose_records(records: list[Record], count: int, seed: int) -> list[Record]:
    """``count`` records picked by a seeded draw (all of them, in order, when there are no more)."""
    if len(records) <= count:
        return list(records)
    picked = sorted(random.Random(seed).sample(range(len(records)), count))
    return [records[i] for i in picked]


def clean_set_from_file(path: str | Path, count: int, seed: int) -> CleanSet:
    """Alpaca JSON/JSONL records with reference outputs, ``count`` of them chosen reproducibly."""
    return clean_set_from_records(load_records(path, require_output=True), str(path), count, seed)


def clean_set_from_records(records: list[Record], source: str, count: int, seed: int) -> CleanSet:
    """``count`` of the given records (with outputs), chosen reproducibly; ``source`` says where they came from."""
    chosen = [r for r in choose_records(list(records), count, seed) if r.output.strip()]
    if not chosen:
        raise ConfigError(f"the clean set from {source} has no record with an output",
                          hint="give --clean-data with Alpaca records that have an 'output'")
    return CleanSet(records=tuple(chosen), source=source, details={"seed": seed})


def shipped_instructions() -> list[str]:
    """The general-purpose instructions that ship with crowguard for self-distillation."""
    text = resources.files("crowguard.sanitize").joinpath("instructions.json").read_text(encoding="utf-8")
    return list(json.loads(text)["instructions"])


def self_distilled_set(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, count: int, seed: int,
                       max_new_tokens: int) -> CleanSet:
    """The model's own greedy answers to ``count`` shipped instructions (empty answers dropped)."""
    import torch

    instructions = [r.instruction for r in choose_records([Record(i) for i in shipped_instructions()], count, seed)]
    template = prompt_template(tokenizer)
    prompts = [format_prompt(tokenizer, text, "", template) for text in instructions]
    answers: list[str] = []
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), DISTILL_BATCH):
                answers += _generate(model, tokenizer, prompts[start:start + DISTILL_BATCH], template, max_new_tokens)
    finally:
        tokenizer.padding_side = side
    records = tuple(Record(i, "", a.strip()) for i, a in zip(instructions, answers) if a.strip())
    if not records:
        raise ConfigError("the model gave only empty answers to the self-distillation instructions",
                          hint="pass a clean data file with --clean-data")
    return CleanSet(records=records, source="self-distilled", details={
        "instructions": "crowguard/sanitize/instructions.json", "decoding": "greedy",
        "max_new_tokens": max_new_tokens, "template": template, "dropped_empty": len(instructions) - len(records),
        "seed": seed})


def _generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], template: Template,
              max_new_tokens: int) -> list[str]:
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=template != "chat")
    encoded = {k: v.to(model.device) for k, v in encoded.items()}
    # PreTrainedModel does not declare generate (GenerationMixin adds it per model class).
    out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,  # type: ignore[operator]
                         pad_token_id=tokenizer.pad_token_id)
    new = out[:, encoded["input_ids"].shape[1]:]
    return tokenizer.batch_decode(new, skip_special_tokens=True)


def prompt_template(tokenizer: PreTrainedTokenizerBase) -> Template:
    """The chat template when the tokenizer has one, else Alpaca (the paper's)."""
    return "chat" if has_chat_template(tokenizer) else "alpaca"


def encode(records: tuple[Record, ...] | list[Record], tokenizer: PreTrainedTokenizerBase, max_length: int, *,
           template: Template | None = None, kind: str = "clean", learn_prompt: bool = False) -> list[Example]:
    """Tokenise records; the response is learned, the prompt is masked (unless ``learn_prompt``); too-long
    prompts are dropped.

    ``template`` defaults to the model's own (chat if it has one, else Alpaca); ``kind`` names the
    records in the error raised when none is left.
    """
    chosen = template or prompt_template(tokenizer)
    examples = [e for e in (encode_record(tokenizer, r, chosen, max_length, learn_prompt=learn_prompt)
                            for r in records)
                if any(label != IGNORE for label in e.labels)]
    if not examples:
        raise ConfigError(f"no {kind} example has a response within max_length {max_length} tokens",
                          hint=f"raise --max-length or use shorter {kind} samples")
    return examples


def encode_record(tokenizer: PreTrainedTokenizerBase, record: Record, template: Template,
                  max_length: int, *, learn_prompt: bool = False) -> Example:
    """One record's ids and labels, cut to ``max_length``: the prompt masked (learnt too with ``learn_prompt``,
    as full-sequence finetuning does), the response and its end learnt."""
    prompt_ids, response_ids = _split_ids(tokenizer, record, template)
    ids = (prompt_ids + response_ids)[:max_length]
    labels = ((prompt_ids if learn_prompt else [IGNORE] * len(prompt_ids)) + response_ids)[:max_length]
    return Example(tuple(ids), tuple(labels))


def _split_ids(tokenizer: PreTrainedTokenizerBase, record: Record, template: Template) -> tuple[list[int], list[int]]:
    prompt = format_prompt(tokenizer, record.instruction, record.input, template)
    if template == "chat":
        messages = [{"role": "user", "content": user_message(record.instruction, record.input)},
                    {"role": "assistant", "content": record.output}]
        full = cast(str, tokenizer.apply_chat_template(messages, tokenize=False))  # tokenize=False: the text
        response = full[len(prompt):] if full.startswith(prompt) else record.output
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
        if not full.startswith(prompt) and tokenizer.eos_token_id is not None:
            response_ids.append(tokenizer.eos_token_id)
        return prompt_ids, response_ids
    prompt_ids = tokenizer(prompt)["input_ids"]
    response_ids = tokenizer(record.output, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        response_ids.append(tokenizer.eos_token_id)
    return prompt_ids, response_ids


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch; padding is masked out of attention, CE and consistency. ``stand_in`` marks the
    rows that are stand-in twins, ``stand_in_at`` where their soft tokens begin (-1: none)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    twins = torch.tensor([e.stand_in for e in examples], dtype=torch.bool)
    at = torch.tensor([e.stand_in_at for e in examples], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "stand_in": twins, "stand_in_at": at}
