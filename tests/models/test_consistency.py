"""Consistency helpers: pair ranges and padding masks."""

import pytest
import torch

from crowguard.models.consistency import consistency_loss, layer_cosines


def test_pairs_and_mask() -> None:
    torch.manual_seed(0)
    hs = tuple(torch.randn(2, 5, 8) for _ in range(6))  # L = 5
    assert layer_cosines(hs).shape == (3, 2, 5)  # CROW pairs h[1:-2] vs h[2:-1]
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    padded = consistency_loss(hs, mask)
    changed = list(hs)
    changed[2] = changed[2].clone()
    changed[2][0, 3:] = 100.0  # only padding positions change
    assert torch.allclose(padded, consistency_loss(tuple(changed), mask))
    assert not torch.allclose(consistency_loss(hs, None), consistency_loss(tuple(changed), None))
    with pytest.raises(ValueError):
        layer_cosines(hs, first=3, last=2)
