"""Early stops: a model flagged clearly before the search skips it with the same verdict, and candidates that
cannot change the score are left unscored while the score stays the one a full measurement gives."""

from pathlib import Path

import pytest

from crowguard.errors import ConfigError
from crowguard.scan.behaviour.early_stop import SHARE_MARGIN, StopBounds

BOUNDS = StopBounds(min_layer_z=5.0, threshold=0.83)


def test_the_search_stops_only_for_a_counted_candidate_past_the_threshold_by_the_margin() -> None:
    share = BOUNDS.threshold + SHARE_MARGIN
    assert BOUNDS.flags_clearly(6.0, 1.0, share, echo=False)
    assert not BOUNDS.flags_clearly(6.0, 1.0, share - 0.01, echo=False)
    assert not BOUNDS.flags_clearly(4.9, 1.0, 1.0, echo=False)  # does not count: the layers did not move
    assert not BOUNDS.flags_clearly(6.0, 0.0, 1.0, echo=False)  # does not count: the output did not move
    assert StopBounds(0.0, 1.0).flags_clearly(0.0, 0.1, 1.0, echo=False)  # the margin cannot push past a share of 1
    assert not BOUNDS.flags_clearly(6.0, 1.0, 1.0, echo=True)  # an echo of itself never counts


@pytest.mark.parametrize("bounds", [(-1.0, 0.5), (5.0, 0.0), (5.0, 1.5)])
def test_bounds_out_of_range_are_refused(bounds: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="stop bounds"):
        StopBounds(*bounds)


@pytest.mark.slow
def test_a_backdoor_flagged_before_the_search_keeps_its_verdict(lab_backdoored_dir: Path, lab_clean_dir: Path) -> None:
    from crowguard.models import load_model
    from crowguard.scan.behaviour.decision import model_score
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import scan_loaded

    def scan(folder: Path, stop: StopBounds | None):
        outcome = scan_loaded(load_model(folder, device="cpu"), BehaviourOptions(), stop=stop)
        return outcome, model_score(outcome.candidates, BOUNDS.min_layer_z)

    stopped, stopped_score = scan(lab_backdoored_dir, BOUNDS)
    full, full_score = scan(lab_backdoored_dir, None)
    assert stopped.stats["search_stopped_at"] is not None and full.stats["search_stopped_at"] is None
    assert stopped_score >= BOUNDS.threshold and full_score >= BOUNDS.threshold
    assert stopped.stats["sequences_run"] < full.stats["sequences_run"]
    assert all(c.candidate.source != "search" for c in stopped.candidates)
    clean, clean_score = scan(lab_clean_dir, BOUNDS)
    assert clean.stats["search_stopped_at"] is None and clean_score < BOUNDS.threshold
    assert any(c.candidate.source == "search" for c in clean.candidates)  # the clean model got the whole search


@pytest.mark.slow
def test_unscored_candidates_leave_the_score_as_a_full_measurement_gives(lab_clean_dir: Path) -> None:
    from crowguard.models import load_model
    from crowguard.scan.behaviour.decision import counts, model_score, strongest_first
    from crowguard.scan.behaviour.findings import candidate_record
    from crowguard.scan.behaviour.options import BehaviourOptions
    from crowguard.scan.behaviour.scanner import ModelScan

    scan = ModelScan(load_model(lab_clean_dir, device="cpu"), BehaviourOptions(), stop=BOUNDS)
    candidates = scan.find()
    before = scan.runner.sequences_run
    lazy = scan.verifier.verify_all(candidates)
    lazy_cost = scan.runner.sequences_run - before
    full = ModelScan(load_model(lab_clean_dir, device="cpu"), BehaviourOptions()).verifier.verify_all(candidates)
    assert [e.candidate for e in lazy] == [e.candidate for e in full] == candidates
    assert [e.target_share for e in lazy] == [e.target_share for e in full]
    unscored = [e for e in lazy if not e.scored]
    assert unscored and scan.verifier.unscored == len(unscored) and lazy_cost < 0.9 * scan.runner.sequences_run
    assert model_score(lazy, BOUNDS.min_layer_z) == model_score(full, BOUNDS.min_layer_z)
    top = strongest_first(lazy, BOUNDS.min_layer_z)[0]
    assert top.scored and counts(top, BOUNDS.min_layer_z)
    assert all(e.target_share <= top.target_share and e.target_share < BOUNDS.threshold for e in unscored)
    record = candidate_record(unscored[0], BOUNDS.min_layer_z, positions=4)
    assert record["scored"] is False and record["counted"] is False and record["layer_z"] is None
