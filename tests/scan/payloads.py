"""Malicious and malformed model files, built at test time (never committed).

Building a payload only pickles a reference to a callable; nothing here calls it, and no test
unpickles what it builds.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any


class SystemCall:
    """Unpickling this runs a shell command: the classic model-file payload."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo crowguard-test-payload",))


class ImportIndirection:
    """Unpickling this imports ``os`` through importlib, a way around name-based deny lists."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (importlib.import_module, ("os",))


# A STACK_GLOBAL whose module name is the result of a call (str('os')): the import is built at load time.
DYNAMIC_IMPORT = (b"\x80\x04\x8c\x08builtins\x94\x8c\x03str\x94\x93\x94\x8c\x02os\x85R\x94"
                  b"\x8c\x06system\x94\x93\x94\x8c\x02id\x85R.")
# Protocol 0: imports mypkg.loader.Thing, known to no allow-list.
UNKNOWN_IMPORT = b"cmypkg.loader\nThing\n)R."


def system_pickle(protocol: int = 4) -> bytes:
    return pickle.dumps(SystemCall(), protocol=protocol)


def truncated_pickle() -> bytes:
    """A state-dict-like pickle cut before its STOP opcode."""
    data = pickle.dumps({"layer.weight": [0.1] * 8, "payload": SystemCall()}, protocol=4)
    return data[: len(data) // 2]


def torch_zip_with_payload(path: Path) -> Path:
    """A real ``torch.save`` checkpoint whose state dict smuggles a payload object."""
    import torch

    torch.save({"weight": torch.zeros(2, 2), "extra": SystemCall()}, path)
    return path


def hand_zip_with_payload(path: Path) -> Path:
    """A PyTorch-style zip written without torch: ``archive/data.pkl`` holds the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", system_pickle(2))
        archive.writestr("archive/version", "3\n")
    return path


def clean_torch_checkpoints(folder: Path) -> list[Path]:
    """A zip and a legacy-format checkpoint of a plain state dict."""
    import torch

    state = {"weight": torch.zeros(3, 2), "bias": torch.ones(2, dtype=torch.bfloat16)}
    torch.save(state, folder / "pytorch_model.bin")
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    return [folder / "pytorch_model.bin", folder / "legacy.pt"]


def safetensors_bytes(header: dict[str, Any] | bytes, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file from a header (dict or raw bytes) and a data area; ``length`` overrides the prefix."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def valid_safetensors() -> bytes:
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}
    return safetensors_bytes(header, bytes(22))


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path
