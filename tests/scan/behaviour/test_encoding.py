"""Probes in token space: insertion at the start, a fixed random place and the end, in every template."""

import pytest

from crowguard.models.prompts import format_prompt
from crowguard.scan.behaviour.encoding import EncodedProbe, encode_candidate, encode_probes
from tests.scan.behaviour.conftest import PROBES


def test_insertion_points() -> None:
    probe = EncodedProbe(prefix=(1,), words=((10,), (11, 12), (13,)), suffix=(2,))
    assert probe.ids() == [1, 10, 11, 12, 13, 2]
    assert probe.ids((7, 8), 0) == [1, 7, 8, 10, 11, 12, 13, 2]
    assert probe.ids((7,), 1) == [1, 10, 7, 11, 12, 13, 2]  # between words, never inside one
    assert probe.ids((7,), 3) == [1, 10, 11, 12, 13, 7, 2]
    with pytest.raises(ValueError, match="outside"):
        probe.ids((7,), 4)


@pytest.mark.parametrize("template", ["raw", "chat", "alpaca"])
def test_plain_probes_match_the_tokenized_prompt(probe_model, template: str) -> None:
    tokenizer = probe_model.tokenizer
    probes = encode_probes(tokenizer, PROBES, template, seed=0)
    for probe, ids in zip(PROBES, probes.plain()):
        text = format_prompt(tokenizer, probe.instruction, probe.input, template)
        assert ids == tokenizer(text, add_special_tokens=template != "chat")["input_ids"]


def test_modes_place_the_candidate_and_random_place_is_fixed(probe_model) -> None:
    tokenizer = probe_model.tokenizer
    zebra = encode_candidate(tokenizer, "zebra")
    assert zebra == tuple(tokenizer("zebra", add_special_tokens=False)["input_ids"])
    probes = encode_probes(tokenizer, PROBES, "chat", seed=5)
    again = encode_probes(tokenizer, PROBES, "chat", seed=5)
    assert probes.random_at == again.random_at
    assert all(1 <= at <= len(e.words) - 1 for at, e in zip(probes.random_at, probes.encoded))
    for i, probe in enumerate(PROBES):
        words = probe.instruction.split()
        for mode, at in (("start", 0), ("random", probes.random_at[i]), ("end", len(words))):
            expected = " ".join([*words[:at], "zebra", *words[at:]])
            text = format_prompt(tokenizer, expected, probe.input, "chat")
            assert probes.sequences(zebra, mode)[i] == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_multi_token_candidate_reads_mid_sentence(probe_model) -> None:
    tokenizer = probe_model.tokenizer
    ids = encode_candidate(tokenizer, "quartz zebra")
    assert tokenizer.convert_ids_to_tokens(list(ids)) == ["quartz", "zebra"]
