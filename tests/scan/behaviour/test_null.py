"""Scoring against random insertions: robust to a trigger inside the null, floored when the null is flat."""

import math

import pytest
import torch

from crowguard.scan.behaviour.null import MIN_DELTA_SCALE, Effect, effect, fit_null, score


def _effect(value: float, kl: float = 0.1) -> Effect:
    delta = torch.zeros(3, 2)
    delta[1, 0] = value
    return Effect(delta=delta, log_kl=math.log(kl), flipped=0.0, converged=0.0, pull=0.0)


def test_z_scores_measure_distance_from_the_null() -> None:
    null = fit_null([_effect(v) for v in (-0.02, -0.01, 0.0, 0.01, 0.02)])
    typical = score(_effect(0.0), null)
    strong = score(_effect(0.2), null)
    assert typical.consistency_z == pytest.approx(0.0, abs=1e-6)
    assert strong.consistency_z > 10 and strong.where == (1, 0)
    assert score(_effect(-0.2), null).consistency_z == pytest.approx(strong.consistency_z)  # either direction


def test_one_trigger_drawn_into_the_null_does_not_hide_it() -> None:
    samples = [_effect(v, kl=0.1) for v in (-0.02, -0.01, 0.0, 0.01, 0.02, -0.015, 0.015)]
    clean = fit_null(samples)
    polluted = fit_null(samples + [_effect(0.5, kl=5.0)])
    trigger = _effect(0.5, kl=5.0)
    assert score(trigger, polluted).consistency_z > 0.5 * score(trigger, clean).consistency_z
    assert score(trigger, polluted).kl_z > 5


def test_flat_null_is_floored() -> None:
    null = fit_null([_effect(0.0) for _ in range(8)])
    assert float(null.delta_scale.min()) == pytest.approx(MIN_DELTA_SCALE)
    assert score(_effect(1e-5), null).consistency_z < 1


def test_effect_counts_changed_and_converged_next_tokens() -> None:
    plain = torch.zeros(2, 3, 2)
    moved = torch.full((2, 3, 2), 0.1)
    found = effect(plain, moved, torch.tensor([0.5, 1.5]), torch.tensor([1, 2]), torch.tensor([7, 7]),
                   torch.tensor([0.9, 0.5]))
    assert found.flipped == 1.0 and found.converged == 1.0 and found.pull == pytest.approx(0.7)
    assert found.log_kl == pytest.approx(math.log(1.0), abs=1e-5)
    torch.testing.assert_close(found.delta, torch.full((3, 2), -0.1))
    split = effect(plain, moved, torch.tensor([0.5, 1.5]), torch.tensor([1, 2]), torch.tensor([1, 5]),
                   torch.tensor([0.9, 0.8]))
    assert split.flipped == 0.5 and split.converged == 0.5 and split.pull == pytest.approx(0.4)
