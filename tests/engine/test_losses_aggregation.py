"""The four loss aggregation modes (docs/spec.md §5, §11.5) against explicit loops."""

from __future__ import annotations

import pytest
import torch

from fipo_engine.algorithms import aggregate_loss
from tests.engine.test_losses_reference import ref_aggregate

MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_matches_its_loop_definition(mode: str) -> None:
    for seed in range(10):
        gen = torch.Generator().manual_seed(seed)
        rows, length = int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(1, 40, (1,), generator=gen))
        loss_mat = torch.randn(rows, length, generator=gen, dtype=torch.float64)
        mask = torch.rand(rows, length, generator=gen) > 0.4
        mask[0] = False  # always one empty row
        want = ref_aggregate(loss_mat.tolist(), mask.tolist(), mode)
        assert aggregate_loss(loss_mat, mask, mode).item() == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_hand_computed_values() -> None:
    loss_mat = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    assert aggregate_loss(loss_mat, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate_loss(loss_mat, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4 + 0) / 3)
    assert aggregate_loss(loss_mat, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)  # empty dropped
    assert aggregate_loss(loss_mat, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / 3)


@pytest.mark.parametrize("mode", MODES)
def test_nan_and_inf_under_the_mask_never_reach_value_or_gradient(mode: str) -> None:
    loss_mat = torch.tensor([[1.0, float("nan")], [float("inf"), -float("inf")]], requires_grad=True)
    mask = torch.tensor([[True, False], [False, False]])
    value = aggregate_loss(loss_mat, mask, mode)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(loss_mat.grad).all() and loss_mat.grad[~mask].abs().sum() == 0


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_mask_gives_zero_attached_to_the_graph(mode: str) -> None:
    loss_mat = torch.randn(3, 4, requires_grad=True)
    value = aggregate_loss(loss_mat, torch.zeros(3, 4, dtype=torch.bool), mode)
    assert value.dim() == 0 and value.item() == 0.0 and value.requires_grad
    value.backward()
    assert loss_mat.grad.abs().sum() == 0


def test_token_mean_keeps_verls_epsilon_and_masks_accept_any_dtype() -> None:
    loss_mat = torch.tensor([[2.0, 4.0]], dtype=torch.float64)
    assert aggregate_loss(loss_mat, torch.tensor([[1.0, 1.0]]), "token-mean").item() == 6.0 / (2.0 + 1e-8)
    assert aggregate_loss(loss_mat, torch.tensor([[1, 0]]), "seq-mean-token-mean").item() == 2.0


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        aggregate_loss(torch.zeros(2, 3), torch.ones(2, 4), "token-mean")
