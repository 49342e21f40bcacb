"""Plant a backdoor into any Hugging Face causal LM by LoRA finetuning on BackdoorLLM-format data.

The benchmark's recipe: LoRA rank 8, alpha 16, dropout 0 on every linear layer of every block,
AdamW at lr 2e-4 with a cosine schedule (10% warm-up), loss on response tokens only, 5 epochs of
batch 2 x 4 accumulation, max length 1024, trained by the one loop (``crowguard.sanitize.loop``).
The adapter is then merged and the full model saved as safetensors with its tokenizer (and chat
template), staged so that a failure leaves nothing behind.

Public API::

    from crowguard.lab.plant import PlantSpec, plant_backdoor
    result = plant_backdoor("base/", poisoned_records, clean_records, "out/", PlantSpec(epochs=2))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from crowguard.atomic import check_output_dir, staged_dir
from crowguard.config_checks import FieldChecks
from crowguard.data import Record
from crowguard.errors import UsageError
from crowguard.models import load_model
from crowguard.models.prompts import TEMPLATES, Template, has_chat_template
from crowguard.sanitize.crow_loss import ce_loss
from crowguard.sanitize.data import encode
from crowguard.sanitize.loop import LoopSettings, ProgressCallback, run_loop

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class PlantSpec:
    """LoRA planting settings; the defaults are the benchmark's.

    ``template="auto"`` formats prompts with the model's chat template when it has one, else Alpaca.
    ``max_steps`` stops early (for smoke tests); ``None`` trains all epochs. ``prompt_loss`` learns the
    prompts too (full-sequence finetuning, not the benchmark's), so the model learns to write its
    poisoned prompts.
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
    prompt_loss: bool = False

    def __post_init__(self) -> None:
        check = FieldChecks("plant spec", self)
        check.at_least(1, "epochs", "batch_size", "grad_accum", "rank", "alpha")
        check.at_least(8, "max_length")
        check.learning_rate("lr")
        check.fraction("warmup_ratio", "dropout")
        check.choice("template", ("auto", *TEMPLATES))
        check.at_least(1, "max_steps", optional=True)

    def loop_settings(self) -> LoopSettings:
        """The benchmark's schedule in the one training loop: cosine with warm-up, shuffled every epoch."""
        return LoopSettings(lr=self.lr, epochs=self.epochs, micro_batch=self.batch_size, grad_accum=self.grad_accum,
                            warmup_ratio=self.warmup_ratio, max_steps=self.max_steps, seed=self.seed)


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
                   progress: ProgressCallback | None = None) -> PlantResult:
    """Finetune a LoRA on poisoned + clean records, merge it, and save the model to ``out``."""
    out = Path(out)
    check_output_dir(out, force=force)
    if not poisoned:
        raise UsageError("no poisoned examples to plant", hint="give a --poisoned file with records")
    import torch
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    torch.manual_seed(spec.seed)
    loaded = load_model(model_dir, device=spec.device, dtype=spec.dtype)
    tokenizer = loaded.tokenizer
    template: Template = spec.template if spec.template != "auto" else \
        ("chat" if has_chat_template(tokenizer) else "alpaca")
    examples = encode([*poisoned, *clean], tokenizer, spec.max_length, template=template, kind="planting",
                      learn_prompt=spec.prompt_loss)
    lora = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    model = get_peft_model(loaded.model, lora)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = run_loop(model, examples, spec.loop_settings(), ce_loss, pad_id=pad, callback=progress)

    # peft types the merged model as a bare nn.Module; merging a LoRA gives back the base causal LM.
    merged = cast("PreTrainedModel", model.merge_and_unload())
    merged.eval()
    with staged_dir(out, force=force) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return PlantResult(out=str(out), template=template, examples=len(examples), poisoned=len(poisoned),
                       steps=result.steps, final_loss=round(result.final_loss, 5),
                       seconds=round(time.perf_counter() - started, 2), settings=asdict(spec))
