"""Scan options are checked on construction and name the field and value."""

from pathlib import Path

import pytest

from crowguard.errors import UsageError
from crowguard.scan.behaviour.options import BehaviourOptions


@pytest.mark.parametrize(("fields", "named"), [
    ({"probe_count": 2}, "probe_count=2"),
    ({"null_samples": 0}, "null_samples=0"),
    ({"template": "llama"}, "template='llama'"),
    ({"seed": -1}, "seed=-1"),
    ({"leak_samples": -1}, "leak_samples=-1"),
    ({"leak_candidates": 0}, "leak_candidates=0"),
    ({"leak_samples": 1025}, "leak_samples=1025"),  # bounded: each sample is generated, and mining is quadratic
    ({"inversion_openings": 257}, "inversion_openings=257"),
    ({"inversion_steps": 0}, "inversion_steps=0"),
])
def test_bad_values_name_field_and_value(fields: dict, named: str) -> None:
    with pytest.raises(UsageError, match=named.replace("(", r"\(")):
        BehaviourOptions(**fields)


def test_missing_probe_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="probe file .*nope.json does not exist"):
        BehaviourOptions(probes=tmp_path / "nope.json")


def test_default_vocabulary_budget_ranks_every_token_of_a_lab_model() -> None:
    # The lab zoo's AUROC and trigger recall (bench/RESULTS.md#scan-auroc) were measured with every token
    # ranked; the smaller default budget keeps that so for lab vocabularies, the longest custom trigger included.
    from crowguard.lab.build import build_tokenizer
    from crowguard.lab.dataset import LabData
    from crowguard.lab.spec import LabSpec

    specs = [LabSpec(attack=None, seed=1), LabSpec(attack="ctba", seed=1),
             LabSpec(attack="vpi", triggers=("as the ancient river flows",), position="suffix", seed=1)]
    sizes = [len(build_tokenizer(LabData(spec).vocabulary_texts())) for spec in specs]
    assert max(sizes) <= BehaviourOptions().vocab_budget, sizes
