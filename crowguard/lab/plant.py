"""Plant a backdoor into any Hugging Face causal LM by LoRA finetuning on BackdoorLLM-format data.

The benchmark's recipe: LoRA rank 8, alpha 16, dropout 0 on every linear layer of every block,
AdamW at lr 2e-4 with a cosine schedule (10% warm-up), loss on response tokens only, 5 epochs of
batch 2 x 4 accumulation, max length 1024. The adapter is then merged and the full model saved as
safetensors with its tokenizer (and chat template), staged so that a failure leaves nothing behind.

Public API::

    from crowguard.lab.plant import PlantSpec, plant_backdoor
    result = plant_backdoor("base/", poisoned_records, clean_records, "out/", PlantSpec(epochs=2))
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.data import Record
from crowguard.errors import UsageError
from crowguard.lab.encoding import collate, encode_example
from crowguard.models import load_model
from crowguard.models.prompts import TEMPLATES, has_chat_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Progress = Callable[[int, int, float], None]
"""Called as ``progress(step, total_steps, loss)`` after every optimiser step."""


@dataclass(frozen=True)
class PlantSpec:
    """LoRA planting settings; the defaults are the benchmark's.

    ``template="auto"`` formats prompts with the model's chat template when it has one, else Alpaca.
    ``max_steps`` stops early (for smoke tests); ``None`` trains all epochs.
    """

    epochs: int = 5
    batch_size: int = 2
    grad_accum: int = 4
    max_length: int = 1024
    lr: float = 2e-4
    warmup_ratio: float = 0.1
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    template: Literal["auto", "raw", "chat", "alpaca"] = "auto"
    seed: int = 42
    max_steps: int | None = None
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "rank", "alpha"):
            if getattr(self, name) < 1:
                _bad(name, getattr(self, name), "an integer >= 1")
        if self.max_length < 8:
            _bad("max_length", self.max_length, "at least 8 tokens")
        if not 0.0 < self.lr < 1.0:
            _bad("lr", self.lr, "a learning rate between 0 and 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            _bad("warmup_ratio", self.warmup_ratio, "a fraction in [0, 1)")
        if not 0.0 <= self.dropout < 1.0:
            _bad("dropout", self.dropout, "a fraction in [0, 1)")
        if self.template != "auto" and self.template not in TEMPLATES:
            _bad("template", self.template, f"auto or one of {', '.join(TEMPLATES)}")
        if self.max_steps is not None and self.max_steps < 1:
            _bad("max_steps", self.max_steps, "an integer >= 1")


@dataclass(frozen=True)
class PlantResult:
    """What planting did."""

    out: str
    template: str
    examples: int
    poisoned: int
    steps: int
    final_loss: float
    seconds: float
    settings: dict[str, Any]


def plant_backdoor(model_dir: str | Path, poisoned: Sequence[Record], clean: Sequence[Record], out: str | Path,
                   spec: PlantSpec = PlantSpec(), *, force: bool = False,
                   progress: Progress | None = None) -> PlantResult:
    """Finetune a LoRA on poisoned + clean records, merge it, and save the model to ``out``."""
    out = Path(out)
    check_output_dir(out, force=force)
    if not poisoned:
        raise UsageError("no poisoned examples to plant", hint="give a --poisoned file with records")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import get_cosine_schedule_with_warmup

    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    loaded = load_model(model_dir, device=spec.device, dtype=spec.dtype)
    tokenizer = loaded.tokenizer
    template = spec.template if spec.template != "auto" else ("chat" if has_chat_template(tokenizer) else "alpaca")
    examples = [encode_example(tokenizer, r, template, spec.max_length) for r in [*poisoned, *clean]]
    random.Random(spec.seed).shuffle(examples)
    batches = [examples[i:i + spec.batch_size] for i in range(0, len(examples), spec.batch_size)]
    total = math.ceil(len(batches) / spec.grad_accum) * spec.epochs
    total = min(total, spec.max_steps) if spec.max_steps is not None else total

    lora = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    model = get_peft_model(loaded.model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total), total)
    step, loss_value = 0, float("nan")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    while step < total:
        for start in range(0, len(batches), spec.grad_accum):
            group = batches[start:start + spec.grad_accum]
            tokens = sum(sum(1 for label in labels if label != -100) for batch in group for _, labels in batch)
            running = 0.0
            for batch in group:
                ids, labels, mask = collate(batch, pad, loaded.device)
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:],
                                                         ignore_index=-100, reduction="sum") / max(tokens, 1)
                loss.backward()
                running += float(loss.detach())
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step, loss_value = step + 1, running
            if progress is not None:
                progress(step, total, loss_value)
            if step >= total:
                break

    # peft types the merged model as a bare nn.Module; merging a LoRA gives back the base causal LM.
    merged = cast("PreTrainedModel", model.merge_and_unload())
    merged.eval()
    with staged_dir(out, force=force) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return PlantResult(out=str(out), template=template, examples=len(examples), poisoned=len(poisoned), steps=step,
                       final_loss=round(loss_value, 5), seconds=round(time.perf_counter() - started, 2),
                       settings=asdict(spec))


def _bad(field: str, value: object, want: str) -> None:
    raise UsageError(f"plant spec: {field}={value!r} is invalid; expected {want}", hint=f"fix the {field} setting")
