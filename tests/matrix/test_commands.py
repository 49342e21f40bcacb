"""Six architectures, each with a tokenizer its family does not ship, through scan, eval, sanitize and gate.

For every family: the ids each command fed the model are the shipped ``tokenizer.json``'s; the report
says the file replaced transformers' tokenizer class exactly when that class reads the file otherwise;
the sanitized and the gated folders carry the tokenizer files byte for byte (or differ only where the
report names a transformers-4 fix-up), load in transformers 5 without missing weights and compute the
input's logits (the training in these runs is real but moves the weights by float noise only).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.models import load_tokenizer
from crowguard.models.tokenizer_fidelity import CHECK_STRINGS, read_tokenizer
from crowguard.report.model import Report
from crowguard.sign import verify_folder
from tests.matrix.builders import (
    BOS,
    CLEAN_SET,
    FAMILIES,
    PROBES,
    SPECIAL_TOKENS,
    TRAINING_SET,
    USER,
    Family,
)
from tests.matrix.conftest import Matrix, Model, Run, probe_args
from tests.matrix.observe import SeenTokens, digests, file_ids, tokenizer_files

runner = CliRunner()
USER_ID = SPECIAL_TOKENS.index(USER)
KIND_MODELS = {"word-level": "WordLevel", "bpe": "BPE", "unigram": "Unigram"}
by_family = pytest.mark.parametrize("family", FAMILIES, ids=str)


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--threads", "1", "--device", "cpu", "-q"])
    return result.exit_code, result.stdout, result.stderr


def _stages(report: Report) -> dict[str, dict]:
    return {s["name"]: s for s in report.model_dump(mode="json")["stages"]}


def _noted(metrics: dict) -> bool:
    """Whether a stage's metrics carry the note that the shipped tokenizer.json replaced transformers' class."""
    note = metrics.get("tokenizer")
    assert note is None or "tokenizer.json" in note
    return note is not None


def test_the_matrix_holds_folders_of_both_kinds(matrix: Matrix) -> None:
    """Some families' tokenizer class misreads the file (the note is due), some read it right (none is)."""
    seen = {matrix.model(f).auto_disagrees for f in FAMILIES}
    assert seen == {True, False}
    assert {f.kind for f in FAMILIES} == set(KIND_MODELS) and len({f.name for f in FAMILIES}) == 6


@by_family
def test_crowguard_reads_the_shipped_tokenizer(matrix: Matrix, family: Family) -> None:
    model = matrix.model(family)
    config = json.loads((model.folder / "config.json").read_text())
    shipped = json.loads((model.folder / "tokenizer.json").read_text())
    assert config["model_type"] == family.name and shipped["model"]["type"] == KIND_MODELS[family.kind]
    assert (read_tokenizer(model.folder).note is not None) == model.auto_disagrees
    tokenizer = load_tokenizer(model.folder)
    for text in (*CHECK_STRINGS, *PROBES, *matrix.files.prompts):
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == file_ids(model.folder, text), text
    chat = tokenizer.apply_chat_template([{"role": "user", "content": PROBES[0]}], tokenize=False,
                                         add_generation_prompt=True)
    assert chat == f"{BOS}{USER} {PROBES[0]} <|assistant|>"
    assert tokenizer(chat, add_special_tokens=False)["input_ids"] == file_ids(model.folder, chat)


@by_family
def test_scan_probes_the_files_tokens(matrix: Matrix, family: Family) -> None:

    model = matrix.model(family)
    with SeenTokens(model.vocab_size) as seen:
        code, out, err = _cli("scan", str(model.folder), *probe_args(matrix.files.probes))
    assert code in (0, 1), err
    report = json.loads(out)
    assert code == report["verdict"]["exit_code"]
    stage = next(s for s in report["stages"] if s["name"] == "behaviour-scan")
    assert stage["status"] == "completed"
    assert stage["metrics"]["verification_probes"] == 4 and stage["metrics"]["search_probes"] == 8
    assert _noted(stage["metrics"]) == model.auto_disagrees
    assert seen.missing(model.folder, PROBES, with_token=USER_ID) == []  # each probe, in the chat template


@by_family
def test_scan_without_a_probe_file_writes_its_probes_in_the_models_vocabulary(matrix: Matrix,
                                                                              family: Family) -> None:
    """No --probes: the word-level vocabularies write too few built-in probes, so the rest are derived from
    the model; the ids fed are still the file's, and the report says where the probes came from."""
    model = matrix.model(family)
    with SeenTokens(model.vocab_size) as seen:
        code, out, err = _cli("scan", str(model.folder), *probe_args(None))
    assert code in (0, 1), err
    stage = next(s for s in json.loads(out)["stages"] if s["name"] == "behaviour-scan")
    assert stage["status"] == "completed", stage.get("errors")
    sources = stage["metrics"]["probe_sources"]
    assert sum(sources.values()) == 12
    derived = stage["metrics"].get("derived_probes", [])
    if family.kind == "word-level":  # only a handful of the 135 English probes fit a small word list
        assert derived and any(source.startswith("derived") for source in sources)
    assert seen.missing(model.folder, derived[:4], with_token=USER_ID) == []


@by_family
def test_eval_generates_from_the_files_tokens(matrix: Matrix, family: Family, tmp_path: Path) -> None:

    model, files = matrix.model(family), matrix.files
    report = tmp_path / "eval.json"
    with SeenTokens(model.vocab_size) as seen:
        code, _, err = _cli("eval", str(model.folder), "--triggered", str(files.triggered), "--clean-test",
                            str(files.clean), "--keyword", "stupid", "--eval-max-new-tokens", "4", "--report",
                            str(report))
    assert code == 0, err
    metrics = json.loads(report.read_text())["stages"][0]["metrics"]
    assert metrics["triggered"]["prompts"] == metrics["clean"]["prompts"] == len(CLEAN_SET)
    assert metrics["asr"] is not None and metrics["perplexity"] is not None
    assert _noted(metrics) == model.auto_disagrees
    assert seen.missing(model.folder, files.prompts) == []


@by_family
def test_sanitize_scans_evaluates_and_trains_on_the_files_tokens(matrix: Matrix, family: Family) -> None:
    model, run = matrix.model(family), matrix.sanitize(family)
    stages = _stages(run.report)
    assert list(stages) == ["behaviour-scan", "eval-before", "sanitize", "eval-after", "behaviour-rescan",
                            "behaviour-recheck", "utility", "attack-success"]
    assert run.report.verdict is not None and run.report.verdict.passed  # the matrix policy passes what ran
    for name in ("behaviour-scan", "eval-before", "sanitize"):
        assert _noted(stages[name]["metrics"]) == model.auto_disagrees, name
    assert stages["sanitize"]["metrics"]["steps"] == 2
    assert run.seen.missing(model.folder, PROBES, with_token=USER_ID) == []
    assert run.seen.missing(model.folder, matrix.files.prompts) == []
    training = [t for r in TRAINING_SET for t in (r["instruction"], r["output"])]
    assert run.seen.missing(model.folder, training) == []


@by_family
def test_the_sanitized_folder_carries_the_tokenizer_and_the_weights(matrix: Matrix, family: Family) -> None:
    run = matrix.sanitize(family)
    _assert_output_folder(matrix.model(family), run, _stages(run.report)["sanitize"]["metrics"]["merge"])


@by_family
def test_gate_signs_a_folder_with_the_tokenizer_and_the_weights(matrix: Matrix, family: Family) -> None:
    model, run = matrix.model(family), matrix.gate(family)
    stages = _stages(run.report)
    assert run.report.verdict is not None and run.report.verdict.passed
    assert {"file-scan", "behaviour-scan", "sanitize", "behaviour-rescan", "sign"} <= set(stages)
    verify_folder(run.out, matrix.files.keys.public)
    assert _noted(stages["behaviour-scan"]["metrics"]) == model.auto_disagrees
    assert run.seen.missing(model.folder, PROBES, with_token=USER_ID) == []
    _assert_output_folder(model, run, stages["sanitize"]["metrics"]["merge"])


def _assert_output_folder(model: Model, run: Run, merge: dict) -> None:
    """The output's tokenizer files are the input's, byte for byte, except what the report names as patched;
    the output loads in transformers 5 as the same architecture and computes the input's logits."""
    from transformers import AutoModelForCausalLM

    assert merge["tokenizer_files"] == model.shipped and tokenizer_files(run.out) == model.shipped
    patched = {p.split(":")[0] for p in merge["compat_patches"]}
    changed = {n for n, digest in digests(run.out, model.shipped).items() if digest != model.shipped_digests[n]}
    assert changed == patched & set(model.shipped) and "tokenizer.json" not in changed
    texts = [*PROBES[:3], f"{BOS}{USER} {PROBES[0]} <|assistant|>"]
    assert [load_tokenizer(run.out)(t, add_special_tokens=False)["input_ids"] for t in texts] == \
        [file_ids(model.folder, t) for t in texts]
    logits = {}
    for name, folder in (("input", model.folder), ("output", run.out)):
        loaded, info = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"], (name, info)
        assert loaded.config.model_type == model.family.name
        with torch.no_grad():
            logits[name] = [loaded(input_ids=torch.tensor([file_ids(model.folder, t)])).logits[0] for t in texts]
    for before, after in zip(logits["input"], logits["output"]):
        assert torch.allclose(before, after, atol=1e-5, rtol=0), (before - after).abs().max()
