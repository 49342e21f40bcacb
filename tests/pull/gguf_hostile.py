"""Hand-made GGUF headers for the hostile-input tests: byte for byte, so they can lie in ways a
writer library would refuse to (counts past the end of the file, arrays nested thousands deep)."""

from __future__ import annotations

import struct

UINT32, STRING, ARRAY, UINT64 = 4, 8, 9, 10


def gguf_string(text: str | bytes, declared: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if declared is None else declared) + raw


def kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", STRING) + gguf_string(value)


def kv_uint32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<I", UINT32) + struct.pack("<I", value)


def header(kvs: list[bytes], *, tensors: list[bytes] | None = None, tensor_count: int | None = None,
           kv_count: int | None = None) -> bytes:
    tensors = tensors or []
    counts = struct.pack("<QQ", len(tensors) if tensor_count is None else tensor_count,
                         len(kvs) if kv_count is None else kv_count)
    return b"GGUF" + struct.pack("<I", 3) + counts + b"".join(kvs) + b"".join(tensors)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ggml_type, offset))


def nested_array(key: str, depth: int) -> bytes:
    """An array of an array of ... (``depth`` levels) holding one uint32."""
    body = struct.pack("<I", 7)
    for _ in range(depth):
        body = struct.pack("<I", ARRAY if _ else UINT32) + struct.pack("<Q", 1) + body
    return gguf_string(key) + struct.pack("<I", ARRAY) + body


def only_architecture(architecture: str = "llama") -> bytes:
    """The few-dozen-byte GGUF that used to make pull build a 7B default model."""
    return header([kv_string("general.architecture", architecture)])


def kv_string_array(key: str, items: list[str]) -> bytes:
    return (gguf_string(key) + struct.pack("<I", ARRAY) + struct.pack("<IQ", STRING, len(items))
            + b"".join(gguf_string(i) for i in items))


def llama_7b_without_tensors() -> bytes:
    """Every hyperparameter of a Llama-7B, a full vocabulary, and not one tensor."""
    kvs = [kv_string("general.architecture", "llama")]
    kvs += [kv_uint32(f"llama.{k}", v) for k, v in (("block_count", 32), ("embedding_length", 4096),
                                                    ("feed_forward_length", 11008), ("attention.head_count", 32),
                                                    ("attention.head_count_kv", 32), ("context_length", 4096))]
    kvs.append(kv_string("tokenizer.ggml.model", "llama"))
    kvs.append(kv_string_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(32000)]))
    return header(kvs)


def patch_uint32(data: bytes, key: str, value: int) -> bytes:
    """``data`` with the uint32 metadata value of ``key`` replaced."""
    at = data.index(gguf_string(key)) + len(gguf_string(key))
    assert struct.unpack_from("<I", data, at)[0] == UINT32
    return data[: at + 4] + struct.pack("<I", value) + data[at + 8:]


def llama_7b_with_stub_tensors() -> bytes:
    """Llama-7B hyperparameters and one 32-float tensor per expected name prefix: passes a name check,
    so only comparing the tensors with the model the metadata describes can refuse it."""
    kvs = [kv_string("general.architecture", "llama")]
    kvs += [kv_uint32(f"llama.{k}", v) for k, v in (("block_count", 32), ("embedding_length", 4096),
                                                    ("feed_forward_length", 11008), ("attention.head_count", 32),
                                                    ("attention.head_count_kv", 32), ("context_length", 4096))]
    kvs.append(kv_string("tokenizer.ggml.model", "gpt2"))
    kvs.append(kv_string_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(1000)]))
    kvs.append(kv_string_array("tokenizer.ggml.merges", []))
    names = ["token_embd.weight", "output_norm.weight"] + [f"blk.{i}.attn_norm.weight" for i in range(32)]
    tensors = [tensor_info(name, (32,), offset=128 * i) for i, name in enumerate(names)]
    data = header(kvs, tensors=tensors)
    data += b"\0" * (-len(data) % 32)
    return data + b"\0" * (128 * len(names))
