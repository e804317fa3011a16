"""Outcome advantages (docs/spec.md §2.3): one score per sequence -> one advantage per sequence.

Registered estimators take ``(scores: Tensor[n] float64, group_index: Tensor[n] int64 in
0..G-1, eps)`` and return Tensor[n] float64; ``outcome_advantages`` converts the inputs, maps any
hashable group ids to that index, and casts back. The trainer broadcasts the result over a
response's tokens and multiplies by the response mask. All statistics are vectorised per group
(scatter-add), so 8192 rollouts cost microseconds, not a Python loop.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from fipo_engine.registry import ADVANTAGE_ESTIMATORS


def _group_stats(scores: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-member group size, group mean, and whether the group is constant (max == min)."""
    n_groups = int(index.max()) + 1 if index.numel() else 0
    count = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, index, torch.ones_like(scores))
    total = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, index, scores)
    high = torch.full((n_groups,), -torch.inf, dtype=scores.dtype).scatter_reduce(0, index, scores, "amax")
    low = torch.full((n_groups,), torch.inf, dtype=scores.dtype).scatter_reduce(0, index, scores, "amin")
    mean = total / count.clamp(min=1)
    return count[index], mean[index], (high == low)[index]


def _centred(scores: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """x − group mean, exactly 0 in constant groups (floating-point means are not exact)."""
    count, mean, constant = _group_stats(scores, index)
    centred = torch.where(constant, 0.0, scores - mean)
    return centred, count, constant


@ADVANTAGE_ESTIMATORS.register("grpo")
def grpo(scores: Tensor, index: Tensor, eps: float = 1e-6) -> Tensor:
    """(R − μ_g)/(σ_g + eps) with the unbiased (N−1) std; a singleton group uses μ = 0, σ = 1 (verl)."""
    centred, count, _ = _centred(scores, index)
    n_groups = int(index.max()) + 1 if index.numel() else 0
    sq = torch.zeros(n_groups, dtype=scores.dtype).index_add_(0, index, centred * centred)[index]
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    singleton = count == 1
    return torch.where(singleton, scores / (1.0 + eps), centred / (std + eps))


@ADVANTAGE_ESTIMATORS.register("dr_grpo")
def dr_grpo(scores: Tensor, index: Tensor, eps: float = 1e-6) -> Tensor:
    """R − μ_g without the std division (Dr.GRPO, arXiv 2503.20783); a singleton group uses μ = 0."""
    centred, count, _ = _centred(scores, index)
    return torch.where(count == 1, scores, centred)


@ADVANTAGE_ESTIMATORS.register("rloo")
def rloo(scores: Tensor, index: Tensor, eps: float = 1e-6) -> Tensor:
    """R_i − mean of the other members = N/(N−1)·(R_i − μ_g) (RLOO, arXiv 2402.14740); singleton -> 0."""
    centred, count, _ = _centred(scores, index)
    return torch.where(count > 1, centred * count / (count - 1).clamp(min=1), 0.0)


def group_index(group_ids: Sequence[Hashable] | Tensor) -> Tensor:
    """Map group ids (any hashables, or an int tensor) to 0..G−1 in order of first appearance."""
    if isinstance(group_ids, Tensor):
        if group_ids.dim() != 1 or group_ids.is_floating_point():
            raise ValueError("group_ids as a tensor must be a 1-D integer tensor")
        ids: Sequence[Hashable] = group_ids.tolist()
    else:
        ids = group_ids
    seen: dict[Hashable, int] = {}
    return torch.tensor([seen.setdefault(g, len(seen)) for g in ids], dtype=torch.int64)


def outcome_advantages(
    name: str, scores: Tensor, group_ids: Sequence[Hashable] | Tensor, *, eps: float = 1e-6
) -> Tensor:
    """Advantage per sequence, Tensor[n], with the registered estimator ``name`` (grpo, dr_grpo, rloo).

    ``scores`` holds n sequence scores (sum of token rewards); ``group_ids`` says which prompt each
    sequence answers. Computed in float64, returned in the scores' float dtype (float32 for ints).
    """
    estimator = ADVANTAGE_ESTIMATORS.get(name)
    scores = torch.as_tensor(scores)
    if scores.dim() != 1:
        raise ValueError(f"scores must be a 1-D tensor of n sequence scores, got shape {tuple(scores.shape)}")
    index = group_index(group_ids)
    if index.numel() != scores.numel():
        raise ValueError(f"group_ids has {index.numel()} entries but scores has {scores.numel()}")
    out_dtype = scores.dtype if scores.is_floating_point() else torch.float32
    result = estimator(scores.detach().cpu().to(torch.float64), index, eps)
    return result.to(dtype=out_dtype, device=scores.device)
