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
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)  # the weights must not depend on what ran before (a random draw can answer only eos)
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
    clean = tmp_path / "clean.jsonl"  # a clean set in the model's words (a random model's own answers can be empty)
    clean.write_text("\n".join(json.dumps({"instruction": w, "input": "", "output": w}) for w in WORDS[:2]))
    outcome = sanitize_model(folder, out, config, clean_data=clean)
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


def _broken_copy(tiny_model_dir: Path, tmp_path: Path, pattern: str, replacement: str) -> Path:
    """The tiny model with a tokenizer.json whose normalizer rewrites ``pattern`` to ``replacement``."""
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, folder)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["normalizer"] = {"type": "Replace", "pattern": {"Regex": pattern}, "content": replacement}
    (folder / "tokenizer.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(("pattern", "replacement", "says"), [
    ("[a-z]", "", "keeps"),  # drops every letter: nothing the model reads resembles the text
    ("[a-z]+", "cat", "keeps"),  # every word becomes "cat": many words, one id, little of the text
])
def test_a_degenerate_tokenizer_is_a_tool_error_naming_the_file(tiny_model_dir: Path, tmp_path: Path,
                                                                pattern: str, replacement: str, says: str) -> None:
    from crowguard.errors import ExitCode, ToolError

    folder = _broken_copy(tiny_model_dir, tmp_path, pattern, replacement)
    with pytest.raises(ToolError, match=says) as caught:
        read_tokenizer(folder)
    assert str(folder / "tokenizer.json") in caught.value.message and "degenerate" in caught.value.message
    assert caught.value.exit_code == ExitCode.TOOL_ERROR


def test_scan_and_eval_fail_closed_on_a_degenerate_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crowguard.cli.app import app

    folder = _broken_copy(tiny_model_dir, tmp_path, "[a-z]", "")
    runner = CliRunner()
    scanned = runner.invoke(app, ["scan", str(folder), "--behaviour", "--threads", "1", "--quiet"])
    assert scanned.exit_code == 3, scanned.output
    stages = {s["name"]: s for s in json.loads(scanned.stdout)["stages"]}
    assert stages["behaviour-scan"]["status"] == "failed"
    assert "degenerate" in stages["behaviour-scan"]["errors"][0]
    tests = tmp_path / "triggered.jsonl"
    tests.write_text(json.dumps({"instruction": "the cat sat", "input": "", "output": "four"}) + "\n")
    evaluated = runner.invoke(app, ["eval", str(folder), "--triggered", str(tests), "--keyword", "four",
                                    "--threads", "1", "--quiet"])
    assert evaluated.exit_code == 3 and "degenerate" in evaluated.stderr


def test_probes_collapsing_onto_a_handful_of_ids_stop_the_scan(tiny_model_dir: Path) -> None:
    from crowguard.errors import ToolError
    from crowguard.scan.behaviour.probes import Probe, check_probe_tokens

    tokenizer = load_tokenizer(tiny_model_dir)
    same = [Probe(instruction="the cat sat on the mat") for _ in range(12)]
    with pytest.raises(ToolError, match="distinct known token"):
        check_probe_tokens(tokenizer, same, tiny_model_dir)
    varied = [Probe(instruction=t) for t in ("the cat sat on the mat .", "what is two plus two ? four",
                                              "hello world !")]
    check_probe_tokens(tokenizer, varied, tiny_model_dir)  # distinct enough: no error


def test_a_character_level_vocabulary_is_not_degenerate() -> None:
    """No merges, no whole words: the check runs on its letters instead, and a faithful one passes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from crowguard.models.tokenizer_fidelity import degenerate

    letters = {c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")}
    tok = Tokenizer(models.BPE(vocab={"<unk>": 0, **letters}, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    assert degenerate(fast) is None
