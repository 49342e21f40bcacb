"""Write a tiny Llama as a GGUF file at test time, laid out as llama.cpp's converter lays it out.

The weights are float32 (GGUF type F32), the query and key projections are permuted the way
llama.cpp permutes them (transformers' loader undoes it), and the tokenizer is a byte-level BPE
("gpt2" in GGUF terms) over the 256 byte symbols, two control tokens and two merges.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


def _permute(weights, heads: int):  # noqa: ANN001, ANN202 - numpy arrays
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def write_tiny_gguf(path: Path, *, chat_template: str = CHAT_TEMPLATE, extra_templates: dict[str, str] | None = None,
                    drop_tensor: str | None = None) -> LlamaForCausalLM:
    """Write a 2-layer random Llama to ``path``; return the torch model it holds (for comparing outputs)."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from crowguard.lab.tiny import tiny_llama

    tokens = ["<s>", "</s>", *bytes_to_unicode().values(), "Ġt", "Ġth"]
    model = tiny_llama(len(tokens), layers=2, hidden=32, heads=4)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(0)  # all F32
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3] + [1] * (len(tokens) - 2))
    writer.add_token_merges(["Ġ t", "Ġt h"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    writer.add_chat_template(chat_template)
    for name, text in (extra_templates or {}).items():
        writer.add_string(f"tokenizer.chat_template.{name}", text)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == drop_tensor:
            continue
        weights = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            weights = _permute(weights, config.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            weights = _permute(weights, config.num_key_value_heads)
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), np.ascontiguousarray(weights))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model
