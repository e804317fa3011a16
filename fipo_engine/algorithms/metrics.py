"""Masked statistics for the loss metrics (docs/spec.md §6), None where there is no data.

The official code returns 0 for statistics over an empty set (or raises on ``min()`` of an empty
tensor); we return None so a chart shows a gap instead of a fake value (§11.5). Masked means are
exact, Σ x·m / Σ m: verl adds 1e-8 to the denominator only to dodge 0/0, which cannot happen here
(empty -> None), and the exact form reports a mean of all-ones weights as exactly 1.0 (the
difference from the official value is below 1e-8 relative). The *loss* keeps verl's +1e-8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


class MaskedStats:
    """Statistics over the positions where one bool mask holds; the mask is counted once.

    Every method returns None when the mask is empty. Means are exact and accumulated in float64.
    """

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask
        self.count = int(mask.sum())

    def mean(self, values: Tensor) -> Tensor | None:
        if self.count == 0:
            return None
        return torch.where(self.mask, values, 0.0).sum(dtype=torch.float64) / self.count

    def fraction(self, condition: Tensor) -> Tensor | None:
        """Share of valid positions where ``condition`` holds (exact integer counts)."""
        if self.count == 0:
            return None
        return (condition & self.mask).sum().to(torch.float64) / self.count

    def min_max(self, values: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Smallest and largest valid value, without boolean indexing."""
        if self.count == 0:
            return None, None
        return torch.where(self.mask, values, torch.inf).min(), torch.where(self.mask, values, -torch.inf).max()


def quantiles(values: Tensor, qs: tuple[float, ...]) -> list[Tensor | None]:
    """Linear-interpolation quantiles (torch.quantile's default method); None for an empty input.

    One ``numpy.partition`` places every order statistic the quantiles need in O(n): a full sort
    (what torch.quantile does, once per quantile) costs 4-10x more on 100k values.
    """
    n = values.numel()
    if n == 0:
        return [None] * len(qs)
    flat = values.detach().reshape(-1).cpu().numpy()
    positions = [q * (n - 1) for q in qs]
    ranks = sorted({r for p in positions for r in (math.floor(p), min(math.floor(p) + 1, n - 1))})
    picked = np.partition(flat, ranks)
    out: list[Tensor | None] = []
    for pos in positions:
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        a, b = float(picked[lo]), float(picked[hi])
        out.append(torch.tensor(a + (b - a) * (pos - lo), dtype=torch.float64))
    return out


def to_floats(metrics: dict[str, Tensor | float | None]) -> dict[str, float | None]:
    """Turn 0-dim tensors into Python floats with one host transfer; keep None as None."""
    keys = [k for k, v in metrics.items() if isinstance(v, Tensor)]
    values = torch.stack([metrics[k].detach().to(torch.float64).reshape(()) for k in keys]).tolist() if keys else []
    as_floats = dict(zip(keys, values, strict=True))
    return {k: as_floats[k] if k in as_floats else (None if v is None else float(v)) for k, v in metrics.items()}
