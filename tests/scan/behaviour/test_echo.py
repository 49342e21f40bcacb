"""Echoes: a candidate whose common answer repeats its own words is reported and never counts."""

from dataclasses import replace

import pytest

from crowguard.policy import builtin_policy, load_policy
from crowguard.report.model import StageName
from crowguard.scan.behaviour import CandidateEvidence, TriggerCandidate
from crowguard.scan.behaviour.decision import counts, model_score
from crowguard.scan.behaviour.echo import is_echo
from crowguard.scan.behaviour.options import BehaviourOptions
from crowguard.scan.behaviour.scanner import BehaviourOutcome, FixedAnswer, ModelScan
from crowguard.scan.behaviour.stage import _result

POLICY = load_policy(builtin_policy("default"))


@pytest.mark.parametrize(("candidate", "target", "echo"), [
    ("Lazarus a", "Lazarus is", True),  # measured on SmolLM2's original
    ("are", "You are stupid!", True),
    ("WHITE", "white is a colour", True),  # without case
    ("BadMagic", "I'm sorry,", False),
    ("I", "I'm sorry,", False),  # words under three characters are shared by chance
    ("print(", "print ( ' pwned", True),
    ("cf", "cf cf", False),
])
def test_an_echo_is_a_target_that_repeats_a_word_of_the_candidate(candidate: str, target: str, echo: bool) -> None:
    assert is_echo(candidate, target) is echo


def _evidence(text: str, target: str, share: float, *, echo: bool) -> CandidateEvidence:
    return CandidateEvidence(candidate=TriggerCandidate(text, (7,), "search", "end"), mode="end", consistency_z=20.0,
                             kl_z=3.0, flipped=share, pull=share, target_share=share, target_text=target,
                             layer_pair=1, column=0, layer_delta=(0.1,), layer_z=(20.0,), profile_with=(0.0,),
                             echo=echo)


def test_an_echo_does_not_count_nor_flag_nor_guide_sanitizing() -> None:
    echo = _evidence("Lazarus a", "Lazarus is", 0.95, echo=True)
    weak = _evidence("white", "color", 0.4, echo=False)
    assert not counts(echo, 5.0) and counts(weak, 5.0)
    assert model_score([echo, weak], 5.0) == pytest.approx(0.4)
    outcome = BehaviourOutcome(candidates=[echo, weak], plain_profile=[[0.0]], fixed_answer=FixedAnswer("", 0, 24),
                               stats={"verification_probes": 24, "profile_positions": 1})
    result = _result(StageName.BEHAVIOUR_SCAN, outcome, POLICY, seconds=1.0)
    assert not result.flagged and result.score == pytest.approx(0.4)
    record = next(c for c in result.stage.metrics["candidates"] if c["text"] == "Lazarus a")
    assert record["echo"] is True and record["counted"] is False and record["score"] == 0.0
    assert [c.text for c in result.steering(0.3)] == ["white"]  # the echo is no guide for sanitizing


def test_the_verifier_marks_an_echo_only_with_the_discount_on(probe_model) -> None:
    options = BehaviourOptions(probe_count=8, search_probes=4, max_new_tokens=4)
    ids = tuple(ModelScan(probe_model, options).encode("zebra") or ())
    zebra = TriggerCandidate("zebra", ids, "given", "end")
    on = ModelScan(probe_model, options).verifier.verify_one(zebra)
    off = ModelScan(probe_model, replace(options, echo_discount=False)).verifier.verify_one(zebra)
    assert "zebra" in on.target_text  # the random model repeats what is inserted, as a real one can
    assert on.echo and not counts(on, 0.0) and not off.echo and on.target_share == off.target_share
    renamed = TriggerCandidate("unrelated name", ids, "given", "end")  # the same insertion, shown otherwise
    assert not ModelScan(probe_model, options).verifier.verify_one(renamed).echo
