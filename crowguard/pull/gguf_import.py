"""Import a GGUF file into a normal safetensors model folder, with transformers' GGUF loader.

Every tensor is dequantized into a plain dense model, and the GGUF quantization config is dropped
so ``config.json`` does not claim a quantization the weights no longer have. The chat templates in
the GGUF metadata are written out as ``chat_template.jinja`` (and transformers'
``additional_chat_templates/NAME.jinja`` for named ones) so the file scan reads them like any
other template. GGUF parsing runs no code; the model class is a built-in transformers one. The
header is checked before anything is built (see ``gguf_checks``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from crowguard.errors import ModelFolderError, first_line
from crowguard.gguf_metadata import GgufHeader
from crowguard.pull.gguf_checks import check_hyperparameters, check_tensors_against_model, checked_header
from crowguard.pull.selection import CHAT_TEMPLATE_DIR

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True)
class GgufImport:
    """What an import wrote: the architecture read from the file and the chat template files."""

    architecture: str
    chat_templates: tuple[str, ...]


def chat_templates(header: GgufHeader) -> dict[str, str]:
    """The header's chat templates: ``{"default": ...}`` plus ``{NAME: ...}`` for ``tokenizer.chat_template.NAME``."""
    templates = {}
    for key, value in header.metadata.items():
        if not isinstance(value, str):
            continue
        if key == DEFAULT_TEMPLATE_KEY:
            templates["default"] = value
        elif key.startswith(DEFAULT_TEMPLATE_KEY + "."):
            templates[key.removeprefix(DEFAULT_TEMPLATE_KEY + ".")] = value
    return templates


def import_gguf(gguf_path: Path, out: Path) -> GgufImport:
    """Write the model in ``gguf_path`` into the (staged, empty) folder ``out`` as safetensors.

    The file is checked against what its architecture needs first (``gguf_checks``), so a header
    that declares a model its tensors do not hold is refused before any memory is spent on it.
    """
    header = checked_header(gguf_path)
    architecture = check_hyperparameters(gguf_path, header)
    templates = chat_templates(header)
    try:
        check_tensors_against_model(gguf_path, header)
    except (ValueError, KeyError, TypeError, NotImplementedError, AttributeError) as exc:
        raise ModelFolderError(f"cannot import {gguf_path.name}: {first_line(exc)}",
                               hint="the metadata does not describe a model transformers can build") from None
    model, tokenizer = _load(gguf_path)
    _drop_quantization(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    written = _write_templates(out, templates)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in config:
        raise ModelFolderError(f"importing {gguf_path.name} left a quantization_config in config.json",
                               hint="report this: the installed transformers changed its GGUF loader")
    return GgufImport(architecture=architecture, chat_templates=written)


def _load(gguf_path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # An empty folder as the model "repository", so no config or tokenizer file lying beside the
    # GGUF can mix into what the GGUF itself says.
    with tempfile.TemporaryDirectory(prefix="crowguard-gguf-") as empty:
        kwargs = {"gguf_file": str(gguf_path.absolute()), "local_files_only": True, "trust_remote_code": False}
        try:
            loaded = AutoModelForCausalLM.from_pretrained(
                empty, quantization_config=GgufConfig(dequantize=True), output_loading_info=True, **kwargs)
            # output_loading_info=True returns (model, info); the stubs type only the model
            model, info = cast("tuple[PreTrainedModel, dict[str, Any]]", loaded)
            tokenizer = AutoTokenizer.from_pretrained(empty, **kwargs)
        except MemoryError:
            raise ModelFolderError(f"out of memory dequantizing {gguf_path.name}",
                                   hint="dequantized weights need several times the GGUF's size in memory") from None
        except (OSError, ValueError, KeyError, TypeError, NotImplementedError, ImportError) as exc:
            raise ModelFolderError(f"cannot import {gguf_path.name}: {first_line(exc)}",
                                   hint="crowguard imports GGUF files of the architectures transformers' "
                                        "GGUF loader supports (llama, mistral, qwen2, ...)") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelFolderError(
            f"{gguf_path.name} lacks tensors the model needs ({len(missing)}, e.g. {', '.join(missing[:3])})",
            hint="the GGUF file is incomplete or uses tensor names transformers does not map")
    model.eval()
    return model, tokenizer


def _drop_quantization(model: object) -> None:
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    config = model.config  # type: ignore[attr-defined]
    if hasattr(config, "quantization_config"):
        del config.quantization_config


def _write_templates(out: Path, templates: dict[str, str]) -> tuple[str, ...]:
    """Write each template exactly as the GGUF holds it (replacing what the tokenizer saved)."""
    written = []
    for name, text in sorted(templates.items()):
        relative = "chat_template.jinja" if name == "default" else f"{CHAT_TEMPLATE_DIR}{_safe_name(name)}.jinja"
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(relative)
    return tuple(written)


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return cleaned or "unnamed"
