"""Masked statistics for the loss metrics (FIPO_SPEC.md §6), None where there is no data.

The official code returns 0 for statistics over an empty set (or raises on ``min()`` of an empty
tensor); we return None so a chart shows a gap instead of a fake value (§11.5). Masked means are
exact, Σ x·m / Σ m: verl adds 1e-8 to the denominator only to dodge 0/0, which cannot happen here
(empty -> None), and the exact form reports a mean of all-ones weights as exactly 1.0 (the
difference from the official value is below 1e-8 relative). The *loss* keeps verl's +1e-8.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor | None:
    """Exact mean of ``values`` where ``mask`` holds (float64); None if the mask is empty."""
    n = mask.sum().to(torch.float64)
    if float(n) == 0.0:
        return None
    return torch.where(mask, values.to(torch.float64), 0.0).sum() / n


def masked_fraction(condition: Tensor, mask: Tensor) -> Tensor | None:
    """Fraction of valid positions where ``condition`` holds; None if the mask is empty."""
    return masked_mean(condition.to(torch.float64), mask)


def quantiles(values: Tensor, qs: tuple[float, ...]) -> list[Tensor | None]:
    """Linear-interpolation quantiles (torch.quantile's default) from one sort; None if empty.

    One sort serves every quantile, and unlike ``torch.quantile`` there is no 16M-element limit.
    """
    n = values.numel()
    if n == 0:
        return [None] * len(qs)
    ordered = torch.sort(values.reshape(-1).to(torch.float64)).values
    out: list[Tensor | None] = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(pos)
        hi = min(lo + 1, n - 1)
        out.append(torch.lerp(ordered[lo], ordered[hi], torch.tensor(pos - lo, dtype=torch.float64)))
    return out


def to_floats(metrics: dict[str, Tensor | float | None]) -> dict[str, float | None]:
    """Turn 0-dim tensors into Python floats with one host transfer; keep None as None."""
    keys = [k for k, v in metrics.items() if isinstance(v, Tensor)]
    values = torch.stack([metrics[k].detach().to(torch.float64).reshape(()) for k in keys]).tolist() if keys else []
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        out[key] = None if value is None else float(value) if not isinstance(value, Tensor) else None
    out.update(zip(keys, values, strict=True))
    return out
