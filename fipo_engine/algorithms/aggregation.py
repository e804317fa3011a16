"""Loss aggregation modes (docs/spec.md §5): per-token losses [B, L] and a mask -> one scalar.

Every mode zeroes masked entries with ``torch.where`` (not a product), so NaN or inf sitting in
padded slots can never reach the loss or its gradient. Every mode returns a 0-dim tensor that is
still attached to the graph of ``loss_mat`` when the mask is empty (its value is then 0), so
``loss.backward()`` always works.
"""

from __future__ import annotations

import torch
from torch import Tensor

from fipo_engine.registry import AGGREGATIONS

#: verl's masked-mean guard; kept so token-mean matches the official value bit for bit.
TOKEN_MEAN_EPS = 1e-8


def _masked(loss_mat: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask.bool(), loss_mat, 0.0)


@AGGREGATIONS.register("token-mean")
def token_mean(loss_mat: Tensor, mask: Tensor) -> Tensor:
    """Σ M·ℓ / (Σ M + 1e-8): every valid token weighs the same (DAPO; the FIPO recipe)."""
    return _masked(loss_mat, mask).sum() / (mask.bool().sum().to(loss_mat.dtype) + TOKEN_MEAN_EPS)


@AGGREGATIONS.register("seq-mean-token-sum")
def seq_mean_token_sum(loss_mat: Tensor, mask: Tensor) -> Tensor:
    """Mean over all B rows of each row's token sum (empty or invalidated rows count as 0)."""
    return _masked(loss_mat, mask).sum(dim=-1).mean() if loss_mat.shape[0] else _masked(loss_mat, mask).sum()


@AGGREGATIONS.register("seq-mean-token-mean")
def seq_mean_token_mean(loss_mat: Tensor, mask: Tensor) -> Tensor:
    """Mean over non-empty rows of each row's token mean (GRPO).

    Officially an empty row gives 0/0 = NaN and poisons the loss; we drop empty rows from the mean
    and return 0 when every row is empty (docs/spec.md §11.5).
    """
    counts = mask.bool().sum(dim=-1)
    row_means = _masked(loss_mat, mask).sum(dim=-1) / counts.clamp(min=1)
    non_empty = counts > 0
    return torch.where(non_empty, row_means, 0.0).sum() / non_empty.sum().clamp(min=1)


@AGGREGATIONS.register("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss_mat: Tensor, mask: Tensor) -> Tensor:
    """Σ M·ℓ / L with L the padded response length: a constant normaliser (Dr.GRPO)."""
    return _masked(loss_mat, mask).sum() / max(loss_mat.shape[-1], 1)


def aggregate_loss(loss_mat: Tensor, mask: Tensor, mode: str = "token-mean") -> Tensor:
    """Aggregate per-token losses [B, L] under ``mask`` with a registered mode (unknown name raises)."""
    if loss_mat.dim() != 2 or loss_mat.shape != mask.shape:
        raise ValueError(f"loss_mat and mask must both be [B, L]; got {tuple(loss_mat.shape)}, {tuple(mask.shape)}")
    return AGGREGATIONS.get(mode)(loss_mat, mask)
