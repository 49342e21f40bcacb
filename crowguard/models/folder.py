"""Checks on a model folder that need no torch: config, weights, architecture.

A folder is opened for loading only if it has a readable ``config.json`` whose ``model_type``
transformers knows as a causal LM, and safetensors weights for every shard the index names, and
only if no link in it leads outside the folder (a loader would read through it; see
``crowguard.containment``). Pickle weights are never loaded, whatever else the folder holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crowguard.containment import links_leading_out
from crowguard.errors import ModelFolderError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFETENSORS_INDEX = "model.safetensors.index.json"


@dataclass(frozen=True)
class ModelFolder:
    """A model folder that passed the structural checks."""

    path: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))


def inspect_folder(path: str | Path) -> ModelFolder:
    """Validate the folder's structure; raise ModelFolderError (exit 2) naming what is wrong."""
    folder = Path(path)
    if not folder.exists():
        raise ModelFolderError(f"model folder {folder} does not exist", hint="check the path")
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is not a folder", hint="give the folder that holds config.json")
    escaping = links_leading_out(folder)
    if escaping:
        name, target = escaping[0]
        raise ModelFolderError(f"{folder / name} is a link leading outside the model folder (to {target}); "
                               "crowguard does not read files outside the folder",
                               hint="remove the link, or replace it with a copy of the file after checking it")
    config = _read_config(folder)
    weights = _safetensors_files(folder)
    _check_architecture(folder, config)
    return ModelFolder(path=folder, config=config, weight_files=weights)


def _read_config(folder: Path) -> dict[str, Any]:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelFolderError(f"{folder} has no config.json",
                               hint="give a Hugging Face model folder (config.json + *.safetensors)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{config_path} is not valid JSON: {exc}",
                               hint="the file is corrupt; pull the model again") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{config_path} must hold a JSON object", hint="pull the model again")
    return config


def _safetensors_files(folder: Path) -> tuple[Path, ...]:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise ModelFolderError(f"{index} is not a valid safetensors index",
                                   hint="pull the model again") from None
        missing = [n for n in names if not (folder / n).is_file() or Path(n).name != n]
        if missing:
            raise ModelFolderError(f"{index} names shards that are not in the folder: {', '.join(missing)}",
                                   hint="pull the model again; a download is incomplete")
        return tuple(folder / n for n in names)
    files = tuple(sorted(folder.glob("*.safetensors")))
    if files:
        return files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelFolderError(
            f"{folder} holds only pickle-based weights ({', '.join(pickles)}); crowguard never unpickles",
            hint="ask the publisher for safetensors weights, or convert them in an isolated sandbox",
        )
    raise ModelFolderError(f"{folder} has no *.safetensors weights", hint="give a folder with safetensors weights")


def _check_architecture(folder: Path, config: dict[str, Any]) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING_NAMES or model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFolderError(
            f"{folder / 'config.json'}: model_type {model_type!r} is not a causal LM architecture "
            "that the installed transformers implements",
            hint="crowguard runs no remote code; only built-in transformers architectures can be loaded",
        )
