"""Verification: candidates' answers are cut where nothing reads further, and each candidate is measured once."""

from crowguard.scan.behaviour.options import BehaviourOptions
from crowguard.scan.behaviour.outputs import KEY_TOKENS
from crowguard.scan.behaviour.scanner import ModelScan, TriggerCandidate
from crowguard.scan.behaviour.verification import EXAMPLES


def test_candidate_answers_are_whole_only_where_shown(probe_model) -> None:
    scan = ModelScan(probe_model, BehaviourOptions(probe_count=8, search_probes=4, max_new_tokens=8))
    verifier = scan.verifier
    sequences = scan.verify_set.sequences(scan.verify_set.encoded[0].words[0], "start")
    whole, answers = verifier._generate(sequences), verifier._answers(sequences)
    assert answers[:EXAMPLES] == whole[:EXAMPLES]  # the examples a finding shows read whole
    assert all(len(a) <= KEY_TOKENS and a == w[:KEY_TOKENS] for a, w in zip(answers[EXAMPLES:], whole[EXAMPLES:]))
    assert max(len(w) for w in whole) > KEY_TOKENS  # the cut saved something here


def test_a_candidate_is_measured_once_per_scan(probe_model) -> None:
    scan = ModelScan(probe_model, BehaviourOptions(probe_count=8, search_probes=4, max_new_tokens=4))
    candidate = TriggerCandidate("zebra", tuple(scan.encode("zebra") or ()), "given", "end")
    first = scan.verifier.verify_one(candidate)
    cost = scan.runner.sequences_run
    (again,) = scan.verifier.verify_all([candidate])
    assert scan.runner.sequences_run == cost and again == first and first.scored
