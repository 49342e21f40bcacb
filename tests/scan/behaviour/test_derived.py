"""Probes for any vocabulary: a model none of whose built-in probes can be written is scanned on probes
derived from it, the report says how many and from where, and its sanitized twin is re-scanned on them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from crowguard.models import load_model
from crowguard.policy import builtin_policy, load_policy
from crowguard.runtime import Runtime
from crowguard.scan.behaviour import BehaviourOptions, behaviour_scan
from crowguard.scan.behaviour.derived import DERIVED_TASKS, VOCABULARY, derive_probes, vocabulary_probes
from crowguard.scan.behaviour.probes import builtin_probes, representable

POLICY = load_policy(builtin_policy("default"))
FAST = BehaviourOptions(probe_count=8, search_probes=4, null_samples=4, vocab_budget=8, search_beams=0,
                        top_candidates=2, max_new_tokens=4)


def test_the_tiny_vocabulary_writes_no_built_in_probe(tiny_model_dir: Path) -> None:
    """The premise: the fixture's word-level vocabulary cannot write the built-in (English) probes."""
    tokenizer = load_model(tiny_model_dir, device="cpu").tokenizer
    assert len(representable(builtin_probes(), tokenizer)) < FAST.probe_count + FAST.search_probes


def test_derived_probes_are_written_in_the_models_vocabulary_and_seeded(tiny_model_dir: Path) -> None:
    loaded = load_model(tiny_model_dir, device="cpu")
    probes = derive_probes(loaded, 12, "chat", seed=3)
    assert len(probes) == 12 and {p.task for p in probes} <= set(DERIVED_TASKS)
    assert representable(probes, loaded.tokenizer) == probes
    assert len({p.instruction for p in probes}) == 12
    assert derive_probes(loaded, 12, "chat", seed=3) == probes  # the same model and seed give the same probes


def test_vocabulary_probes_use_only_whole_words_of_the_vocabulary(tiny_model_dir: Path) -> None:
    tokenizer = load_model(tiny_model_dir, device="cpu").tokenizer
    vocabulary = set(tokenizer.get_vocab())
    for probe in vocabulary_probes(tokenizer, 10, seed=0):
        words = probe.instruction.split()
        assert 5 <= len(words) <= 10 and set(words) <= vocabulary and probe.task == VOCABULARY


def test_a_model_without_writable_built_in_probes_is_scanned_on_derived_ones(tiny_model_dir: Path) -> None:
    result = behaviour_scan(tiny_model_dir, POLICY, options=FAST, runtime=Runtime(device="cpu"))
    assert result.stage.status == "completed", result.stage.errors
    sources = result.stage.metrics["probe_sources"]
    assert sum(sources.values()) == FAST.probe_count + FAST.search_probes
    assert sum(n for source, n in sources.items() if source in DERIVED_TASKS) >= FAST.probe_count
    assert "derived" in result.stage.metrics["probes"]  # said in words too, for the markdown and HTML tables
    assert result.derived_probes and result.stage.metrics["derived_probes"] == [
        p.instruction for p in result.derived_probes]
    # the sanitized twin is measured on the very same prompts, not on probes derived from it anew
    twin = result.options_for_twin(FAST)
    assert twin.fixed_probes == result.derived_probes
    again = behaviour_scan(tiny_model_dir, POLICY, options=twin, runtime=Runtime(device="cpu"))
    assert again.stage.metrics["derived_probes"] == result.stage.metrics["derived_probes"]
    assert again.stage.metrics["probe_sources"] == sources


def test_options_for_twin_keeps_options_without_derived_probes() -> None:
    from crowguard.report.model import StageResult
    from crowguard.scan.behaviour import BehaviourScanResult

    plain = BehaviourScanResult(StageResult(name="behaviour-scan"))  # type: ignore[arg-type]
    assert plain.options_for_twin(FAST) is FAST
    assert replace(FAST, seed=1).fixed_probes == ()


@pytest.mark.parametrize("template", ["chat", "raw"])
def test_derivation_runs_with_either_template(tiny_model_dir: Path, template: str) -> None:
    loaded = load_model(tiny_model_dir, device="cpu")
    assert len(derive_probes(loaded, 4, template, seed=0)) == 4
