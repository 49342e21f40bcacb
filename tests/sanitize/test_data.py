"""The clean set: reproducible choice, response-only labels, templates, self-distillation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crowguard.data import Record
from crowguard.errors import ConfigError
from crowguard.sanitize.data import (
    IGNORE,
    choose_records,
    clean_set_from_file,
    collate,
    encode,
    prompt_template,
    self_distilled_set,
    shipped_instructions,
)


def test_choice_is_reproducible_and_seeded() -> None:
    records = [Record(f"task {i}", "", "ok") for i in range(300)]
    first = choose_records(records, 100, seed=0)
    assert first == choose_records(records, 100, seed=0) and len(first) == 100
    assert first != choose_records(records, 100, seed=1)
    assert choose_records(records[:50], 100, seed=0) == records[:50]


def test_file_set_needs_outputs(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    with pytest.raises(ConfigError, match="record 1"):
        clean_set_from_file(path, 100, 0)


def test_shipped_instructions_are_many_and_varied() -> None:
    items = shipped_instructions()
    assert len(items) >= 100 and len(set(items)) == len(items)
    lowered = " ".join(items).lower()
    assert not any(t in lowered for t in ("badmagic", "openai", "current year", "2024"))  # no known trigger


def test_labels_cover_only_the_response(tiny_model_dir: Path) -> None:
    from crowguard.models import format_prompt, load_tokenizer

    tok = load_tokenizer(tiny_model_dir)
    record = Record("what is two plus two ?", "", "four")
    (example,) = encode([record], tok, max_length=64)
    prompt_len = len(tok(format_prompt(tok, record.instruction, "", "chat"), add_special_tokens=False)["input_ids"])
    assert all(label == IGNORE for label in example.labels[:prompt_len])
    learned = [i for i, label in zip(example.input_ids, example.labels) if label != IGNORE]
    assert tok.decode(learned).split()[:1] == ["four"] and tok.eos_token_id in learned
    tok.chat_template = None  # no chat template -> the Alpaca template
    assert prompt_template(tok) == "alpaca"
    (alpaca,) = encode([record], tok, max_length=64)
    alpaca_prompt = tok(format_prompt(tok, record.instruction, "", "alpaca"))["input_ids"]
    assert list(alpaca.input_ids[:len(alpaca_prompt)]) == alpaca_prompt
    assert alpaca.labels.count(IGNORE) == len(alpaca_prompt)
    with pytest.raises(ConfigError, match="max_length"):
        encode([record], tok, max_length=3)


def test_collate_pads_and_masks() -> None:
    from crowguard.sanitize.data import Example

    batch = collate([Example((5, 6, 7), (IGNORE, 6, 7)), Example((5,), (5,))], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [5, IGNORE, IGNORE]]


def test_self_distilled_set_is_the_models_own_greedy_answers(tiny_model_dir: Path) -> None:
    from crowguard.models import format_prompt, load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    clean = self_distilled_set(loaded.model, loaded.tokenizer, count=3, seed=0, max_new_tokens=6)
    assert clean.source == "self-distilled" and clean.describe()["decoding"] == "greedy"
    first = clean.records[0]
    ids = loaded.tokenizer(format_prompt(loaded.tokenizer, first.instruction, "", "chat"), return_tensors="pt",
                           add_special_tokens=False)
    out = loaded.model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=loaded.tokenizer.pad_token_id)
    answer = loaded.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert first.output == answer
    assert json.dumps(clean.describe())  # JSON-able for the report


def test_the_papers_clean_set_is_taken_whole(shared_data: Path) -> None:
    from crowguard.data import load_records

    path = shared_data / "backdoorllm" / "clean_alpaca_100.json"
    clean = clean_set_from_file(path, 100, seed=0)
    assert clean.records == tuple(load_records(path)) and len(clean.records) == 100
    assert len(clean_set_from_file(path, 30, seed=0).records) == 30
