"""Model loading: safetensors only, clear errors for folders that cannot be opened safely."""

import json
import pickle
import shutil
from pathlib import Path

import pytest

from crowguard.errors import ModelFolderError, UsageError
from crowguard.models import format_prompt, inspect_folder, load_model


def test_loads_tiny_model_with_chat_template(tiny_model_dir: Path) -> None:
    loaded = load_model(tiny_model_dir, device="cpu", threads=1)
    assert (loaded.device, loaded.dtype) == ("cpu", "float32")
    prompt = format_prompt(loaded.tokenizer, "the cat sat", template="chat")
    assert prompt.startswith("<|user|>") and prompt.endswith("<|assistant|>")
    assert format_prompt(loaded.tokenizer, "hi", "there") == "hi\n\nthere"
    assert "### Response:" in format_prompt(None, "hi", template="alpaca")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="does not exist"):
        inspect_folder(tmp_path / "nope")


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelFolderError, match="no config.json"):
        inspect_folder(tmp_path)


def test_pickle_only_folder_is_refused_without_unpickling(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):  # noqa: ANN204 - the test's own malicious pickle
            return (Path.touch, (marker,))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ModelFolderError, match="only pickle-based weights"):
        load_model(folder, device="cpu")
    assert not marker.exists()


def test_unknown_architecture(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil_custom"
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match="not a causal LM architecture"):
        load_model(folder, device="cpu")


def test_bad_device(tiny_model_dir: Path) -> None:
    with pytest.raises(UsageError):
        load_model(tiny_model_dir, device="tpu")


def test_stop_ids_come_from_the_generation_config_else_the_tokenizer(tiny_model_dir: Path) -> None:
    loaded = load_model(tiny_model_dir, device="cpu", dtype="float32")
    tokenizer_eos = loaded.tokenizer.eos_token_id
    assert tokenizer_eos is not None
    loaded.model.generation_config.eos_token_id = [tokenizer_eos + 1, tokenizer_eos + 2]
    assert loaded.stop_ids() == [tokenizer_eos + 1, tokenizer_eos + 2]
    loaded.model.generation_config.eos_token_id = tokenizer_eos + 3
    assert loaded.stop_ids() == [tokenizer_eos + 3]
    loaded.model.generation_config.eos_token_id = None  # a config without one: the tokenizer's end of sequence
    assert loaded.stop_ids() == [tokenizer_eos]
