"""The tokenizer a folder ships decides, not ``model_type``; sanitize carries it out byte for byte.

transformers 5 loads a qwen2 folder's tokenizer as ``Qwen2Tokenizer``, which rebuilds a byte-level BPE
from the vocabulary and ignores a word-level ``tokenizer.json``: an instruction becomes a stray id
or two. crowguard must encode with the shipped file and say so in the report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crowguard.lab.tiny import build_tokenizer, save_tiny
from crowguard.models import load_model, load_tokenizer
from crowguard.models.tokenizer_fidelity import CHECK_STRINGS, first_mismatch, read_tokenizer

WORDS = ["what is the capital of france ?", "the cat sat on the mat .", "summarize the following text"]


@pytest.fixture(scope="module")
def qwen2_word_level(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 with a word-level tokenizer.json (not the BPE its model_type implies)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer(WORDS)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False)
    out = tmp_path_factory.mktemp("qwen2") / "model"
    return save_tiny(out, Qwen2ForCausalLM(config), tokenizer)


def _file_ids(folder: Path, text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text, add_special_tokens=False).ids


def test_a_qwen2_folder_encodes_with_its_shipped_tokenizer(qwen2_word_level: Path) -> None:
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(qwen2_word_level), local_files_only=True)
    assert first_mismatch(auto, qwen2_word_level / "tokenizer.json") is not None  # the failure being guarded
    choice = read_tokenizer(qwen2_word_level)
    assert choice.note is not None and type(auto).__name__ in choice.note and "tokenizer.json" in choice.note
    tokenizer = load_tokenizer(qwen2_word_level)
    for text in (*CHECK_STRINGS, "what is the capital of france ?"):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == _file_ids(qwen2_word_level, text)
    assert tokenizer.chat_template is not None and tokenizer.pad_token is not None


def test_a_folder_whose_class_agrees_keeps_it_and_says_nothing(tiny_model_dir: Path) -> None:
    choice = read_tokenizer(tiny_model_dir)
    assert choice.note is None
    loaded = load_model(tiny_model_dir, device="cpu")
    assert loaded.tokenizer_note is None


def test_the_note_reaches_the_loaded_model_and_the_evaluation(qwen2_word_level: Path) -> None:
    from crowguard.data import Record
    from crowguard.evaluate import EvalSpec, evaluate

    loaded = load_model(qwen2_word_level, device="cpu")
    assert loaded.tokenizer_note is not None
    spec = EvalSpec(keywords=("cat",), triggered=(Record("what is the capital of france ?", "", "the cat"),),
                    max_new_tokens=2, perplexity=False)
    assert "tokenizer.json" in evaluate(loaded, spec).to_dict()["tokenizer"]


def test_a_malformed_tokenizer_file_is_a_model_folder_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from crowguard.errors import ModelFolderError

    folder = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match="tokenizer"):
        read_tokenizer(folder)


def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


@pytest.mark.parametrize("model", ["tiny_model_dir", "qwen2_word_level"])
def test_sanitize_carries_the_tokenizer_out_byte_identical(model: str, request: pytest.FixtureRequest,
                                                           tmp_path: Path) -> None:
    from crowguard.sanitize import SanitizeConfig, sanitize_model
    from crowguard.sanitize.merge import TOKENIZER_FILES

    folder: Path = request.getfixturevalue(model)
    out = tmp_path / "out"
    out.mkdir()
    config = SanitizeConfig(max_steps=1, epochs=1, num_samples=2, micro_batch=1, grad_accum=1,
                            distill_max_new_tokens=4, checkpoint_every=0)
    outcome = sanitize_model(folder, out, config)
    shipped = [n for n in TOKENIZER_FILES if (folder / n).is_file()]
    assert "tokenizer.json" in shipped and outcome.merge["tokenizer_files"] == shipped
    patched = {p.split(":")[0] for p in outcome.merge["compat_patches"]}  # what the report says changed
    same = [n for n in shipped if n not in patched]
    assert _digests(folder, same) == _digests(out, same)
    assert "tokenizer.json" in same
    if "tokenizer_config.json" in patched:  # only the transformers-4 fix-ups differ
        before = json.loads((folder / "tokenizer_config.json").read_text())
        after = json.loads((out / "tokenizer_config.json").read_text())
        assert after["tokenizer_class"] == "PreTrainedTokenizerFast"
        assert {k: v for k, v in after.items() if k not in ("tokenizer_class", "additional_special_tokens")} == \
            {k: v for k, v in before.items() if k not in ("tokenizer_class", "extra_special_tokens")}
    assert load_tokenizer(out)("the cat sat", add_special_tokens=False)["input_ids"] == _file_ids(folder, "the cat sat")
