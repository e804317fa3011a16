"""Small pure helpers that turn a training step into catalog metrics and compact samples."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import torch

FLOAT16_MAX = 65504.0


def length_stats(lengths: Sequence[int], truncated: Sequence[bool]) -> dict[str, float]:
    arr = np.asarray(lengths, dtype=np.float64)
    return {
        "response_length/mean": float(arr.mean()),
        "response_length/median": float(np.median(arr)),
        "response_length/p75": float(np.quantile(arr, 0.75)),
        "response_length/max": float(arr.max()),
        "response_length/min": float(arr.min()),
        "response_length/clip_ratio": float(np.mean(truncated)),
    }


def reward_stats(scores: Sequence[float], correct: Sequence[bool]) -> dict[str, float]:
    arr = np.asarray(scores, dtype=np.float64)
    return {"reward/mean": float(arr.mean()), "reward/std": float(arr.std()), "reward/max": float(arr.max()),
            "reward/min": float(arr.min()), "accuracy/mean": float(np.mean(correct))}


class MetricAccumulator:
    """Combine per-micro-batch loss metrics into one value per step.

    ``*_max`` names keep the maximum, ``*_min`` the minimum, everything else the mean; ``None``
    (a statistic with no token to compute it on) is skipped, and stays ``None`` if it never had a value.
    """

    def __init__(self) -> None:
        self._values: dict[str, list[float]] = defaultdict(list)
        self._names: list[str] = []

    def add(self, metrics: dict[str, float | None]) -> None:
        for name, value in metrics.items():
            if name not in self._values:
                self._names.append(name)
            if value is not None and np.isfinite(value):
                self._values[name].append(float(value))
            else:
                self._values.setdefault(name, [])

    def result(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in self._names:
            vals = self._values[name]
            if not vals:
                out[name] = None
            elif name.endswith("_max"):
                out[name] = max(vals)
            elif name.endswith("_min"):
                out[name] = min(vals)
            else:
                out[name] = float(np.mean(vals))
        return out


def compact(values: torch.Tensor | Iterable[float]) -> list[float]:
    """Per-token array rounded to float16 precision (~3 significant digits) so 20k tokens stay small.

    Values are clipped to the float16 range first; the shortest decimal that round-trips the
    float16 value is kept (``0.1`` rather than ``0.0999755859375``). NaN stays NaN (null on the wire).
    """
    arr = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    arr = np.clip(arr, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    return [float(s) for s in arr.astype(str)]


def minibatch_of_groups(order: Sequence[int], mini_groups: int) -> list[int]:
    """Mini-batch position (0-based) of every group when groups are trained in ``order``, ``mini_groups`` at a time."""
    out = [0] * len(order)
    for position, group in enumerate(order):
        out[int(group)] = position // mini_groups
    return out


def _quota(num_minibatches: int, k: int) -> list[int]:
    """How many samples each mini-batch position gets: spread evenly, the remainder to the latest ones.

    Future-KL is exactly 0 in the first mini-batch (the policy has not moved yet) and grows with every
    optimizer step, so with fewer samples than mini-batches the later ones are preferred: k = 1 takes
    the last, k = 2 of 4 takes positions 3 and 1.
    """
    quota = [k // num_minibatches] * num_minibatches
    rest = k % num_minibatches
    for i in range(rest):
        quota[num_minibatches - 1 - (i * num_minibatches) // rest] += 1
    return quota


def sample_indices(num_groups: int, group_size: int, k: int, seed: int, step: int,
                   minibatch_of_group: Sequence[int] | None = None) -> list[int]:
    """Up to ``k`` sequence indices from distinct groups, seeded by (seed, step), without global RNG.

    With ``minibatch_of_group`` (``minibatch_of_groups``), the groups are drawn across the mini-batch
    positions (``_quota``) instead of uniformly, so the logged samples show FIPO's weights at several
    distances from the rollout policy; a position with too few groups leaves its share to the others.
    """
    if k <= 0 or num_groups == 0:
        return []
    rng = np.random.default_rng([seed, step, 7])
    if minibatch_of_group is None:
        groups = [int(g) for g in rng.permutation(num_groups)[:k]]
    else:
        num_minibatches = max(minibatch_of_group) + 1
        by_position: list[list[int]] = [[] for _ in range(num_minibatches)]
        for g in rng.permutation(num_groups):
            by_position[minibatch_of_group[int(g)]].append(int(g))
        quota = _quota(num_minibatches, min(k, num_groups))
        groups = [g for pos in range(num_minibatches) for g in by_position[pos][: quota[pos]]]
        spare = [g for pos in reversed(range(num_minibatches)) for g in by_position[pos][quota[pos]:]]
        groups += spare[: min(k, num_groups) - len(groups)]
    members = rng.integers(0, group_size, size=len(groups))
    return sorted(g * group_size + int(m) for g, m in zip(groups, members, strict=True))
