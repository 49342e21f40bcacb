"""Check a GGUF file against what its architecture needs before anything is built from it.

A GGUF of a few dozen bytes that names only ``general.architecture`` makes transformers build the
architecture's full default model (billions of parameters) and fill memory. So, before any model
exists: the header is read with bounded memory (``crowguard.gguf_metadata``), the architecture must
be one transformers imports, its structural hyperparameters must be present and in range, every
block must have tensors, and the model the metadata describes is built on PyTorch's ``meta`` device
(no memory for weights) and compared with the tensor table, named as transformers' loader names
it (gguf's tensor name map): every weight the model needs must be in the file with as many elements
as the model expects, and the model may hold no more parameters than the file's tensors. Since
those tensors lie inside the file, the dequantized model is bounded by a small multiple of its size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from crowguard.errors import ModelFolderError
from crowguard.gguf_metadata import GgufError, GgufHeader, LongArray, read_gguf_header

# Structural keys (under the architecture's prefix) and the values accepted; real models are far inside.
RANGES = {
    "block_count": (1, 512),
    "embedding_length": (1, 1 << 16),
    "feed_forward_length": (1, 1 << 20),
    "attention.head_count": (1, 1024),
    "attention.head_count_kv": (0, 1024),
    "context_length": (1, 1 << 24),
    "rope.dimension_count": (1, 4096),
    "expert_count": (0, 1024),
    "expert_used_count": (0, 1024),
}
REQUIRED = ("block_count", "embedding_length", "feed_forward_length", "attention.head_count")
MAX_VOCAB = 1 << 20
MAX_EXPERT_BLOCKS = 1 << 14  # experts x blocks: bounds the modules a meta-device model is built of
PARAMETER_SLACK = 1 << 20  # parameters a model may have beyond the file's tensors (norm scales, small extras)
_HINT = "the GGUF file is damaged or was not written by a GGUF converter; get the file again from its publisher"


def checked_header(gguf_path: Path) -> GgufHeader:
    """The file's header, read with bounded memory; ModelFolderError naming the file if it is malformed."""
    try:
        return read_gguf_header(gguf_path)
    except GgufError as exc:
        raise ModelFolderError(f"{gguf_path.name} is not a valid GGUF file: {exc}", hint=_HINT) from None
    except OSError as exc:
        raise ModelFolderError(f"cannot read {gguf_path.name}: {exc.strerror or exc}",
                               hint="check the file and its permissions") from None


def check_hyperparameters(gguf_path: Path, header: GgufHeader) -> str:
    """The architecture, once its structural metadata is present and in range."""
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    architecture = header.metadata.get("general.architecture")
    if not isinstance(architecture, str):
        raise ModelFolderError(f"{gguf_path.name} has no general.architecture string", hint=_HINT)
    configs = cast("dict[str, dict[str, Any]]", GGUF_CONFIG_MAPPING)
    mapping = configs.get(architecture.replace("-", "_"), configs.get(architecture))
    if architecture in ("general", "tokenizer") or mapping is None:
        supported = ", ".join(k for k in GGUF_CONFIG_MAPPING if k not in ("general", "tokenizer"))
        raise ModelFolderError(f"{gguf_path.name} has architecture {architecture!r}, which transformers' GGUF "
                               "loader does not import", hint=f"supported: {supported}")
    problems = []
    for key, (low, high) in RANGES.items():
        full = f"{architecture}.{key}"
        value = header.metadata.get(full)
        if value is None:
            if key in REQUIRED and key in mapping:
                problems.append(f"{full} is missing")
            continue
        values = value if isinstance(value, tuple) else (value,)  # some keys are per layer
        if isinstance(value, LongArray) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                   and low <= v <= high for v in values):
            shown = f"an array of {value.length}" if isinstance(value, LongArray) else repr(value)[:80]
            problems.append(f"{full} is {shown} (expected whole numbers from {low} to {high})")
    experts = header.metadata.get(f"{architecture}.expert_count")
    blocks = header.metadata.get(f"{architecture}.block_count")
    if isinstance(experts, int) and isinstance(blocks, int) and experts * blocks > MAX_EXPERT_BLOCKS:
        problems.append(f"{experts} experts in each of {blocks} blocks (at most {MAX_EXPERT_BLOCKS} in all)")
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    length = tokens.length if isinstance(tokens, LongArray) else len(tokens) if isinstance(tokens, tuple) else 0
    if not 1 <= length <= MAX_VOCAB:
        problems.append(f"tokenizer.ggml.tokens holds {length} tokens (expected 1 to {MAX_VOCAB})")
    if problems:
        raise ModelFolderError(f"{gguf_path.name} cannot be imported: {'; '.join(problems)}", hint=_HINT)
    _check_tensor_names(gguf_path, header, int(cast(int, header.metadata[f"{architecture}.block_count"])))
    return architecture


def _check_tensor_names(gguf_path: Path, header: GgufHeader, blocks: int) -> None:
    """GGUF's standard names, cheaply: the token embedding, and tensors for every block and no other."""
    names = {t.name for t in header.tensors}
    present = {int(n.split(".")[1]) for n in names if n.startswith("blk.") and n.split(".")[1].isdigit()}
    missing = ["token_embd.weight"] if "token_embd.weight" not in names else []
    missing += [f"blk.{i}.*" for i in range(blocks) if i not in present]
    if missing:
        raise ModelFolderError(f"{gguf_path.name} lacks tensors the model needs ({len(missing)}, e.g. "
                               f"{', '.join(missing[:3])}): block_count is {blocks}, the file holds "
                               f"{len(names)} tensors", hint=_HINT)
    if extra := sorted(i for i in present if i >= blocks):
        raise ModelFolderError(f"{gguf_path.name} holds tensors for block {extra[0]}, but block_count is {blocks}",
                               hint=_HINT)


def check_tensors_against_model(gguf_path: Path, header: GgufHeader) -> None:
    """Build the model the metadata describes on the meta device; its weights must all be in the file."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=False)  # the header only, now known bounded
    config_values: dict[str, Any] = dict(parsed["config"])
    config = AutoConfig.for_model(config_values.pop("model_type"), **config_values)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    architecture = str(header.metadata["general.architecture"])
    wanted = _gguf_names(architecture, config.num_hidden_layers, model.state_dict())
    tied = bool(getattr(config, "tie_word_embeddings", False))
    missing, mismatched = [], []
    for gguf_name, (hf_name, numel) in sorted(wanted.items()):
        tensor = header.tensor(gguf_name)
        if tensor is None and tied and gguf_name == "output.weight":
            continue
        if tensor is None:
            missing.append(f"{gguf_name} ({hf_name})")
        elif tensor.n_elements != numel:
            mismatched.append(f"{gguf_name} has {tensor.n_elements} elements, the metadata implies {numel}")
    if missing:
        raise ModelFolderError(f"{gguf_path.name} lacks tensors the model needs ({len(missing)}, e.g. "
                               f"{', '.join(missing[:3])})", hint=_HINT)
    if mismatched:
        raise ModelFolderError(f"{gguf_path.name} has tensors of the wrong shape: {'; '.join(mismatched[:3])}",
                               hint=_HINT)
    needed = sum(p.numel() for p in model.parameters())
    held = sum(t.n_elements for t in header.tensors)
    if needed > held + PARAMETER_SLACK:
        raise ModelFolderError(f"{gguf_path.name}: its metadata describes a model of {needed} parameters, its "
                               f"tensors hold {held}", hint=_HINT)


def _gguf_names(architecture: str, layers: int, state: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """``{GGUF tensor name: (HF name, element count)}`` for the model's weights that GGUF names.

    The same mapping transformers' GGUF loader uses (gguf's tensor name map), built once rather than
    once per submodule; a weight whose name the map does not know is left to the element-count check.
    """
    from gguf import MODEL_ARCH_NAMES, get_tensor_name_map

    arch = next((key for key, value in MODEL_ARCH_NAMES.items() if value == architecture), None)
    if arch is None:
        return {}
    name_map = get_tensor_name_map(arch, layers)
    names = {}
    for hf_name, param in state.items():
        stem, dot, suffix = hf_name.rpartition(".")
        if suffix not in ("weight", "bias"):
            stem, dot, suffix = hf_name, "", ""
        candidates = (stem, stem.split(".", 1)[-1])  # as a whole, and without the wrapper's prefix
        gguf_stem = next((g for g in map(name_map.get_name, candidates) if g is not None), None)
        if gguf_stem is not None:
            names[gguf_stem + dot + suffix] = (hf_name, int(param.numel()))
    return names
