"""Merge the trained LoRA into a full-precision copy of the base and save it as sharded safetensors.

The adapter was trained on a possibly 4-bit base; merging into the 4-bit weights would bake the
quantisation error into the output, so the base is loaded again from the input folder in its own
dtype, the adapter's weights are applied, and the merged model is saved beside the input's tokenizer
files, copied byte for byte (never re-saved: a tokenizer transformers rebuilt would be written in place
of the one the model shipped). The saved files are then made readable by transformers 4.x as well, which deployers'
serving stacks often still run: a folder written by transformers 5 carries ``rope_theta`` only inside
``rope_parameters`` (4.x then silently falls back to 10000 and computes wrong logits) and names a
tokenizer class 4.x does not know. ``save_model_folder`` is that saving half; the prune baseline
saves its pruned model with it too.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crowguard.errors import ToolError
from crowguard.models import load_model

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

FLOAT_DTYPES = ("float32", "bfloat16", "float16")
V5_ONLY_TOKENIZER_CLASSES = ("TokenizersBackend", "SentencePieceBackend")
LOAD_TIME_KEYS = ("is_local", "local_files_only", "trust_remote_code")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "vocab.txt", "merges.txt",
                   "tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
TEMPLATE_DIR = "additional_chat_templates"


def adapter_snapshot(trained: PeftModel) -> tuple[Any, dict[str, Any]]:
    """The adapter's config and weights, on CPU, so the training model can be freed before merging."""
    from peft import get_peft_model_state_dict

    weights = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(trained).items()}
    return copy.deepcopy(trained.peft_config["default"]), weights


def merge_and_save(base_path: str | Path, adapter: tuple[Any, dict[str, Any]], out: Path, *,
                   max_shard_size: str = "2GB") -> dict[str, Any]:
    """Write the merged model into ``out`` (an empty staging folder); return what was written."""
    from peft import get_peft_model, set_peft_model_state_dict

    lora_config, weights = adapter
    lora_config.inference_mode = True
    dtype = source_dtype(base_path)
    base = load_model(base_path, device="cpu", dtype=dtype).model
    peft_model = get_peft_model(base, lora_config)
    # peft annotates the result as the bare ``namedtuple`` factory; it is torch's load_state_dict result.
    unexpected: list[str] = set_peft_model_state_dict(peft_model, weights).unexpected_keys  # type: ignore[attr-defined]
    if unexpected:
        raise ToolError(f"the trained adapter does not fit the base in {base_path}: {unexpected[:3]}",
                        hint="report this; the base changed between training and merging")
    merged = peft_model.merge_and_unload(safe_merge=True)
    return save_model_folder(merged, base_path, out, dtype=dtype, max_shard_size=max_shard_size)


def save_model_folder(model: PreTrainedModel, base_path: str | Path, out: Path, *, dtype: str,
                      max_shard_size: str = "2GB") -> dict[str, Any]:
    """Save ``model`` into ``out`` beside ``base_path``'s tokenizer files (byte for byte), readable by 4.x too."""
    model.save_pretrained(out, max_shard_size=max_shard_size)
    copied = copy_tokenizer_files(Path(base_path), out)
    patched = make_transformers4_compatible(out)
    return {"dtype": dtype, "files": sorted(p.name for p in out.iterdir()), "tokenizer_files": copied,
            "compat_patches": patched}


def copy_tokenizer_files(source: Path, out: Path) -> list[str]:
    """Copy the input's tokenizer files into ``out`` byte for byte (regular files only); return their names."""
    copied = []
    for name in TOKENIZER_FILES:
        path = source / name
        if path.is_file() and not path.is_symlink():
            shutil.copyfile(path, out / name)
            copied.append(name)
    templates = source / TEMPLATE_DIR
    if templates.is_dir() and not templates.is_symlink():
        (out / TEMPLATE_DIR).mkdir(exist_ok=True)
        for path in sorted(templates.iterdir()):
            if path.is_file() and not path.is_symlink():
                shutil.copyfile(path, out / TEMPLATE_DIR / path.name)
                copied.append(f"{TEMPLATE_DIR}/{path.name}")
    if not copied:
        raise ToolError(f"{source} has no tokenizer files to carry into the sanitized model",
                        hint="the input folder needs tokenizer.json (or the tokenizer files transformers knows)")
    return copied


def source_dtype(path: str | Path) -> str:
    """The dtype the input checkpoint was saved in (float32 when it does not say)."""
    config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    value = config.get("dtype") or config.get("torch_dtype") or "float32"
    return value if value in FLOAT_DTYPES else "float32"


def make_transformers4_compatible(folder: Path) -> list[str]:
    """Add what transformers 4.x needs to read a v5-saved folder identically; return what was changed."""
    changes: list[str] = []
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        if config.get("rope_theta") != rope["rope_theta"]:
            config["rope_theta"] = rope["rope_theta"]
            changes.append("config.json: top-level rope_theta")
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        if scaling.get("rope_type", "default") != "default" and "rope_scaling" not in config:
            config["rope_scaling"] = scaling
            changes.append("config.json: rope_scaling")
    if "dtype" in config and "torch_dtype" not in config:
        config["torch_dtype"] = config["dtype"]
        changes.append("config.json: torch_dtype")
    if changes:
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    tok_path = folder / "tokenizer_config.json"
    if tok_path.is_file():
        tok = json.loads(tok_path.read_text(encoding="utf-8"))
        before = len(changes)
        if tok.get("tokenizer_class") in V5_ONLY_TOKENIZER_CLASSES and (folder / "tokenizer.json").is_file():
            tok["tokenizer_class"] = "PreTrainedTokenizerFast"
            changes.append("tokenizer_config.json: tokenizer_class PreTrainedTokenizerFast")
        if isinstance(tok.get("extra_special_tokens"), list):  # 4.x wants a dict there; v5 reads this key too
            tok["additional_special_tokens"] = tok.pop("extra_special_tokens")
            changes.append("tokenizer_config.json: additional_special_tokens")
        for key in LOAD_TIME_KEYS:  # how this process loaded the tokenizer, not part of the tokenizer
            if tok.pop(key, None) is not None:
                changes.append(f"tokenizer_config.json: dropped {key}")
        if len(changes) > before:
            tok_path.write_text(json.dumps(tok, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return changes
