"""The trainable model: the base (4-bit NF4 on CUDA, full precision elsewhere) plus a LoRA adapter.

A fresh adapter (rank 8, alpha 16, dropout 0 on every linear layer of every block) is the default;
``adapter_dir`` continues a given adapter on its base instead, as the paper did. Adapters are read
from safetensors only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crowguard.errors import ModelFolderError, UsageError
from crowguard.models import LoadedModel, load_model
from crowguard.sanitize.config import SanitizeConfig

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def resolve_quantize(mode: str, device: str) -> str:
    """'auto' -> 4-bit NF4 on CUDA (QLoRA), none elsewhere."""
    if mode == "auto":
        return "4bit" if device.startswith("cuda") else "none"
    return mode


def load_base(model_path: str | Path, config: SanitizeConfig, *, device: str, threads: int | None) -> LoadedModel:
    """Load the frozen base for training, quantised as ``config.quantize`` resolves on ``device``."""
    from crowguard.models import resolve_device

    device = resolve_device(device)
    quantize = resolve_quantize(config.quantize, device)
    return load_model(model_path, device=device, quantize=quantize, threads=threads)  # type: ignore[arg-type]


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """A LoRA adapter folder with a config and safetensors weights, else a UsageError naming the fix."""
    folder = Path(adapter_dir)
    if not (folder / ADAPTER_CONFIG).is_file():
        raise UsageError(f"{folder} has no {ADAPTER_CONFIG}", hint="give a PEFT LoRA adapter folder to --adapter")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        raise ModelFolderError(f"{folder} has no {ADAPTER_WEIGHTS} (crowguard never unpickles adapter .bin files)",
                               hint="convert the adapter to safetensors in an isolated sandbox")
    return folder


def attach_lora(model: PreTrainedModel, config: SanitizeConfig, *, quantized: bool,
                adapter_dir: str | Path | None = None) -> PeftModel:
    """Wrap ``model`` with a trainable LoRA adapter (fresh, or continued from ``adapter_dir``)."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    checkpointing = {"use_reentrant": False}  # the reentrant kind breaks d Lc / d embeddings
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if adapter_dir is not None:
        folder = check_adapter_dir(adapter_dir)
        peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=True, local_files_only=True)
    else:
        targets = config.lora_targets[0] if config.lora_targets == ("all-linear",) else list(config.lora_targets)
        # peft annotates lora_alpha as int but only divides it by r, so a float alpha works as meant.
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,  # type: ignore[arg-type]
                          lora_dropout=config.lora_dropout, target_modules=targets, bias="none", task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, lora)
    peft_model.train()
    return peft_model


def base_layer_count(model: PreTrainedModel | PeftModel) -> int:
    """L, the number of decoder blocks (hidden_states has L + 1 entries)."""
    count = getattr(model.config, "num_hidden_layers", None)
    if not isinstance(count, int) or count < 3:
        raise UsageError(f"CROW needs a model with at least 3 decoder layers, this one has {count}",
                         hint="use --method finetune for such a small model")
    return count
