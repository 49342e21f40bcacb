"""Load a model folder into torch, safely: safetensors only, no remote code, sensible device/dtype.

Torch and transformers are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from crowguard.errors import ModelFolderError, ToolError, UsageError, first_line
from crowguard.models.folder import ModelFolder, inspect_folder
from crowguard.models.tokenizer_fidelity import TokenizerChoice, read_tokenizer

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DTYPES = ("auto", "float32", "bfloat16", "float16")
Quantize = Literal["none", "4bit"]


@dataclass
class LoadedModel:
    """A model and its tokenizer, with the device and dtype they were loaded with."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    folder: ModelFolder
    device: str
    dtype: str
    quantize: Quantize = "none"
    tokenizer_note: str | None = None  # set when the shipped tokenizer.json replaced transformers' class

    def stop_ids(self) -> list[int]:
        """The tokens that end an answer: the generation config's end-of-sequence id(s), else the tokenizer's."""
        eos = self.model.generation_config.eos_token_id
        found = [eos] if isinstance(eos, int) else list(eos or [self.tokenizer.eos_token_id])
        return [int(i) for i in found if i is not None]


def configure_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count (one thread is fastest for small models on small CPUs)."""
    if threads is None:
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}", hint="pass --threads 1 or more")
    import torch

    torch.set_num_threads(threads)


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; a named device must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} asked for, but no CUDA GPU is visible",
                         hint="use --device cpu or --device auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"unknown device {device!r}", hint="use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' -> bfloat16 on CUDA, float32 on CPU (bf16 matmuls are very slow on most CPUs)."""
    import torch

    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load the folder's tokenizer (with its chat template) as shipped; see ``tokenizer_fidelity``."""
    return _tokenizer(path).tokenizer


def _tokenizer(path: str | Path) -> TokenizerChoice:
    choice = read_tokenizer(path)
    if choice.tokenizer.pad_token is None:
        choice.tokenizer.pad_token = choice.tokenizer.eos_token
    return choice


def load_model(
    path: str | Path,
    *,
    device: str = "auto",
    dtype: str = "auto",
    quantize: Quantize = "none",
    threads: int | None = None,
) -> LoadedModel:
    """Open a model folder for inference or training; weights come only from safetensors."""
    folder = inspect_folder(path)
    configure_threads(threads)
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    choice = _tokenizer(folder.path)
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "use_safetensors": True,
        "trust_remote_code": False,
        "local_files_only": True,
    }
    if quantize == "4bit":
        kwargs["quantization_config"] = nf4_config(torch_dtype)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder.path), **kwargs)
    except MemoryError:
        raise ToolError(f"out of memory loading {folder.path}",
                        hint="use --quantize 4bit or a bigger machine") from None
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"cannot load the model in {folder.path}: {first_line(exc)}",
                               hint="check that the folder is a complete Hugging Face causal LM") from None
    if quantize == "none":
        # transformers wraps ``to`` with functools.wraps(nn.Module.to), which types it as the unbound method
        model.to(device)  # type: ignore[arg-type]
    model.eval()
    return LoadedModel(model=model, tokenizer=choice.tokenizer, folder=folder, device=device,
                       dtype=str(torch_dtype).removeprefix("torch."), quantize=quantize,
                       tokenizer_note=choice.note)


def nf4_config(compute_dtype: torch.dtype) -> Any:
    """4-bit NF4 with double quantisation: the QLoRA base."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype)
