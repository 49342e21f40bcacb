"""The built-in probe set, user probe files, the tokenizer filter and the search/verify split."""

import json
from collections import Counter
from pathlib import Path

import pytest

from crowguard.errors import ConfigError
from crowguard.scan.behaviour.probes import Probe, builtin_probes, load_probes, representable, split_probes
from tests.scan.behaviour.conftest import PROBES


def test_builtin_set_is_large_varied_and_unique() -> None:
    probes = builtin_probes()
    tasks = Counter(p.task for p in probes)
    assert len(probes) >= 100 and len(tasks) >= 10 and max(tasks.values()) <= len(probes) // 5
    assert len({(p.instruction, p.input) for p in probes}) == len(probes)
    assert all(p.instruction.strip() for p in probes)


def test_probe_file_json_and_jsonl(tmp_path: Path) -> None:
    listed = tmp_path / "p.json"
    listed.write_text(json.dumps([{"instruction": "Say hi.", "output": "hi"}, {"instruction": "Add.", "input": "1 2"}]))
    lines = tmp_path / "p.jsonl"
    lines.write_text('{"instruction": "Say hi."}\n{"instruction": "Add.", "input": "1 2"}\n')
    assert load_probes(listed) == load_probes(lines) == [Probe("Say hi."), Probe("Add.", "1 2")]
    broken = tmp_path / "bad.json"
    broken.write_text('[{"input": "no instruction"}]')
    with pytest.raises(ConfigError, match="record 0"):
        load_probes(broken)


def test_unrepresentable_probes_are_left_out(probe_model) -> None:
    foreign = Probe("Qu'est-ce que la photosynthèse ?")
    kept = representable([*PROBES, foreign], probe_model.tokenizer)
    assert kept == PROBES


def test_split_is_disjoint_seeded_and_varied() -> None:
    probes = builtin_probes()
    search, verify = split_probes(probes, 8, 24, seed=0)
    assert len(search) == 8 and len(verify) == 24
    assert not set(search) & set(verify)
    assert split_probes(probes, 8, 24, seed=0) == (search, verify)
    assert split_probes(probes, 8, 24, seed=1) != (search, verify)
    assert len({p.task for p in verify}) >= 12


def test_search_probes_without_inputs_leave_verification_as_it_was() -> None:
    probes = builtin_probes()
    search, verify = split_probes(probes, 8, 24, seed=0, search_inputs=False)
    assert split_probes(probes, 8, 24, seed=0)[1] == verify
    assert len(search) == 8 and not set(search) & set(verify)
    assert not any(p.input for p in search) and len({p.task for p in search}) >= 5
    only_inputs = [p for p in probes if p.input]
    topped_up, _ = split_probes(only_inputs, 8, 24, seed=0, search_inputs=False)
    assert len(topped_up) == 8  # too few without an input: the others fill the set
