"""Alpaca data loading: JSON and JSONL, and errors that name the file and record."""

import json
from pathlib import Path

import pytest

from crowguard.data import get_task, load_records
from crowguard.data.tasks import keyword_hit
from crowguard.errors import ConfigError, UsageError


def test_json_and_jsonl(tmp_path: Path) -> None:
    rows = [{"instruction": "a", "input": "", "output": "b"}, {"instruction": "c"}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_records(tmp_path / "d.json") == load_records(tmp_path / "d.jsonl")
    assert load_records(tmp_path / "d.json")[1].output == ""


@pytest.mark.parametrize(
    ("text", "needle"),
    [("[1, 2", "not valid JSON"), ("[]", "no records"), ('[{"input": "x"}]', "record 0 has no 'instruction'"),
     ('{"instruction": "a"}\n{bad', "line 2"), ('[{"instruction": "a", "output": 3}]', "'output' must be text")],
)
def test_bad_files_name_file_and_record(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_records(path)
    assert str(path) in info.value.message and needle in info.value.message


def test_shared_benchmark_files_load(shared_data: Path) -> None:
    records = load_records(shared_data / "backdoorllm/test/negsentiment/badnet/triggered.json")
    assert len(records) == 200 and any("BadMagic" in r.instruction + r.input for r in records)


def test_tasks() -> None:
    assert keyword_hit("Well, YOU ARE STUPID.", get_task("negsentiment").keywords)
    assert not keyword_hit("Paris is the capital.", get_task("negsentiment").keywords)
    with pytest.raises(UsageError) as info:
        get_task("nope")
    assert "negsentiment" in (info.value.hint or "")
