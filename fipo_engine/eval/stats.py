"""Evaluation statistics: avg@k (= Pass@1), pass@k, cons@k, bootstrap CI, length summaries.

Pure functions over per-problem counts and answers, so they are tested against hand-computed
cases and reused by the trainer's in-training evaluation and by ``fipo eval``.

* avg@k (the paper's "Pass@1", spec §9): the mean over problems of c_i / n_i, with n_i samples of
  which c_i are correct.
* pass@k: the unbiased estimator of Chen et al. 2021 (Codex paper),
  1 - C(n-c, k) / C(n, k), averaged over problems; with n = k it is "any sample correct".
* cons@k: majority vote over the normalised extracted answers of a problem's samples; samples
  with no extractable answer do not vote; a tie goes to the answer that reached the top count
  first in sample order (deterministic); no answer at all counts as wrong.
* The 95% interval for Pass@1 is a percentile bootstrap over problems (problems are the unit
  of sampling of a benchmark), seeded so reruns print the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: P(at least one of k samples drawn from the n is correct)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i): no huge binomials
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def avg_at_k(n: int, c: int) -> float:
    """Mean accuracy of one problem's samples (its Pass@1 estimate)."""
    if n <= 0:
        raise ValueError("a problem needs at least one sample")
    return c / n


def majority_vote(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most common non-None answer and its count; ties go to the answer that got there first."""
    counts: dict[str, int] = {}
    best: str | None = None
    best_count = 0
    for answer in answers:
        if answer is None:
            continue
        counts[answer] = counts.get(answer, 0) + 1
        if counts[answer] > best_count:
            best, best_count = answer, counts[answer]
    return best, best_count


def cons_correct(normalised: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the majority answer of one problem is correct (a sample with that answer was graded right)."""
    winner, _ = majority_vote(normalised)
    if winner is None:
        return False
    return any(ok for answer, ok in zip(normalised, correct, strict=True) if answer == winner)


def bootstrap_ci(
    values: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per problem), seeded."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def length_summary(lengths: Sequence[int]) -> tuple[float | None, float | None]:
    """(mean, 75th percentile, linear interpolation) of response lengths; (None, None) when unknown."""
    if not lengths:
        return None, None
    data = np.asarray(lengths, dtype=np.float64)
    return float(data.mean()), float(np.quantile(data, 0.75))


def paired_bootstrap_diff(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, tuple[float, float]]:
    """Mean of ``b - a`` over paired per-problem values and its percentile bootstrap interval.

    Why paired: both models answered the same problems, so resampling problems (not each model's
    samples separately) cancels the problem-difficulty variance both share; the interval is much
    narrower than the two separate CIs suggest. Same seed -> same interval.
    """
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.shape != xb.shape:
        raise ValueError(f"paired values need equal lengths, got {xa.size} and {xb.size}")
    diff = xb - xa
    return float(diff.mean()) if diff.size else 0.0, bootstrap_ci(diff, n_resamples=n_resamples,
                                                                  confidence=confidence, seed=seed)
