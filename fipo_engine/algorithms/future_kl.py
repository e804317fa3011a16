"""Discounted future KL (docs/spec.md §3 steps 1-5, §4 extensions) in O(L) work per row.

The official code evaluates F_t = Σ_{k≥t} γ^(k−t)·x_k as an O(L²) matrix product in column
chunks. The same quantity is the reverse recurrence F_t = x_t + γ·F_{t+1}. A Python loop over
20k positions is slow, and the closed form γ^(−t)·cumsum(γ^k·x_k) overflows or cancels in
float32 for long rows, so we use a *blocked scan*:

1. cut each row into blocks of K positions;
2. inside every block, the discounted suffix sums are one [K, K] decay-matrix product
   (all blocks of all rows batched in a single GEMM; every weight is ≤ 1, so nothing overflows);
3. the value at the start of each block is a scan of the block totals with decay γ^K:
   the same function applied recursively (float64), so there is no Python loop over positions
   and the depth is log_K(L);
4. F inside block j = local suffix sum + γ^(K−i)·(value at the start of block j+1).

Work is O(B·L·K) multiply-adds in one GEMM, memory O(B·L + K²). Every function here is pure.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
from torch import Tensor

#: δ is clamped to ±20 before anything else (official), so exp(δ) ≤ 4.9e8 stays finite in float32.
LOG_RATIO_CLAMP = 20.0
#: Block length of the scan (fastest of 16..256 on CPU; accuracy is the same: see bench/future_kl.py).
BLOCK = 64

Start = Literal["include_current", "exclude_current"]
ParticipationFilter = Literal["all_tokens", "negative_advantage_only", "none"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else (bf16, fp16, fp32) is computed in float32 (§11.4)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def clamped_log_ratio(log_prob: Tensor, old_log_prob: Tensor, response_mask: Tensor) -> Tensor:
    """Step 1: δ = clamp(log_prob − old_log_prob, ±20) on valid tokens, exactly 0 on padding.

    Zeroing padding (instead of multiplying by the mask) keeps NaN/inf garbage in padded slots
    from leaking into any sum, and gives padded positions ratio 1. Gradient flows to log_prob only.
    """
    dtype = compute_dtype(log_prob.dtype)
    raw = log_prob.to(dtype) - old_log_prob.detach().to(dtype)
    delta = torch.clamp(raw, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return torch.where(response_mask, delta, 0.0)


def participation_mask(
    delta: Tensor,
    clip_ratio_c: float,
    *,
    advantages: Tensor | None = None,
    mode: ParticipationFilter = "all_tokens",
) -> Tensor:
    """Step 3: p_t = 0 where δ_t > ln c (strict, in log space), else 1. Bool Tensor[B, L].

    ``all_tokens`` (official) ignores the advantage sign; ``negative_advantage_only`` is the
    paper-Eq.5 reading and needs ``advantages``; ``none`` keeps every token (vanilla FutureKL).
    """
    if mode == "none":
        return torch.ones_like(delta, dtype=torch.bool)
    high = delta > math.log(clip_ratio_c)
    if mode == "all_tokens":
        return ~high
    if mode == "negative_advantage_only":
        if advantages is None:
            raise ValueError("participation_filter 'negative_advantage_only' needs the advantages")
        return ~(high & (advantages < 0))
    raise ValueError(f"unknown participation_filter {mode!r}; valid: all_tokens, negative_advantage_only, none")


def gamma_from_decay_rate(decay_rate: float) -> float:
    """γ = 2^(−1/τ): the weight halves every τ tokens (τ ≥ 1; τ = 1e9 gives γ ≈ 1)."""
    if not decay_rate >= 1.0:
        raise ValueError(f"decay_rate must be >= 1, got {decay_rate}")
    return 2.0 ** (-1.0 / decay_rate)


@lru_cache(maxsize=64)
def _decay_matrix(gamma: float, k: int, dtype: torch.dtype) -> Tensor:
    """[K, K] with D[k, i] = γ^(k−i) for k ≥ i else 0, so ``blocks @ D`` gives suffix sums."""
    idx = torch.arange(k, dtype=torch.float64)
    dist = idx[:, None] - idx[None, :]
    mat = torch.where(dist >= 0, torch.pow(torch.tensor(gamma, dtype=torch.float64), dist.clamp(min=0)), 0.0)
    # Flush weights below the smallest normal number (τ = 1: γ^127 ≈ 6e-39): denormal operands
    # make CPU GEMMs ~10x slower, and such weights change no sum.
    mat = torch.where(mat < torch.finfo(dtype).tiny, 0.0, mat)
    return mat.to(dtype)


def discounted_suffix_sum(x: Tensor, gamma: float, *, block: int = BLOCK) -> Tensor:
    """S_t = Σ_{k≥t} γ^(k−t)·x_k along the last dim of ``x`` [B, L], in ``x``'s dtype.

    Blocked scan (module docstring). The in-block GEMM runs in ``x``'s dtype (each output then
    carries only O(K) roundings of small terms); block totals, carries and the final combine run in
    float64, because their rounding would otherwise add up over the L/K blocks or reach a few ulps
    of |F| (≈1e-5 at L=20k, γ≈1 in float32). The result is rounded once to ``x``'s dtype.
    """
    rows, length = x.shape
    if length == 0:
        return torch.zeros(rows, 0, dtype=x.dtype, device=x.device)
    if length <= block:  # one block: the decay-matrix product is the whole answer
        return x @ _decay_matrix(gamma, length, x.dtype).to(x.device)
    n_blocks = -(-length // block)
    padded = torch.nn.functional.pad(x, (0, n_blocks * block - length))  # zeros after the end: no effect
    local = (padded.reshape(rows * n_blocks, block) @ _decay_matrix(gamma, block, x.dtype).to(x.device))
    local = local.reshape(rows, n_blocks, block)
    # Block totals straight from x in float64 (a mat-vec): in float32 their rounding adds up
    # across the L/K carries (≈1e-5 at L=20k, γ≈1).
    weights = _decay_matrix(gamma, block, torch.float64)[:, 0].to(x.device)  # γ^k, k = 0..K−1
    totals = padded.reshape(rows, n_blocks, block).to(torch.float64) @ weights
    # value at the start of every block = scan of block totals with decay γ^K (recursive, float64)
    starts = discounted_suffix_sum(totals, gamma**block, block=block)
    carry = torch.nn.functional.pad(starts[:, 1:], (0, 1))  # value at the start of the next block
    tail = _decay_matrix(gamma, block + 1, torch.float64)[block, :block].to(x.device)  # γ^(K−i), i < K
    full = torch.addcmul(local.to(torch.float64), carry[:, :, None], tail).to(x.dtype)
    return full.reshape(rows, n_blocks * block)[:, :length]


def _shift_left(x: Tensor, by: int) -> Tensor:
    """y_t = x_{t+by}, zero past the end (by ≥ 0)."""
    if by == 0:
        return x
    if by >= x.shape[-1]:
        return torch.zeros_like(x)
    return torch.nn.functional.pad(x[..., by:], (0, by))


def windowed_discounted_sum(x: Tensor, gamma: float, window: int) -> Tensor:
    """Σ_{d=0}^{W} γ^d·x_{t+d} (W = −1: unbounded), in ``x``'s dtype.

    Bounded windows use S_t − γ^(W+1)·S_{t+W+1} on float64 suffix sums: nothing overflows, and the
    cancellation error is ~1e-16 relative to S (in float32 it would be ~1e-7·|S|).
    """
    if window == 0:
        return x.clone()  # exactly the current term (S_t − γ·S_{t+1} would round)
    if window < 0 or window + 1 >= x.shape[-1]:
        return discounted_suffix_sum(x, gamma)
    suffix = discounted_suffix_sum(x.to(torch.float64), gamma)
    return (suffix - gamma ** (window + 1) * _shift_left(suffix, window + 1)).to(x.dtype)


def _window_counts(response_mask: Tensor, lo: int, window: int) -> Tensor:
    """Number of valid positions k with k − t in [lo, W] (W = −1: to the end), per t. float64."""
    length = response_mask.shape[-1]
    prefix = torch.nn.functional.pad(torch.cumsum(response_mask.to(torch.int64), dim=-1), (1, 0))  # C[j] = Σ_{k<j}
    t = torch.arange(length, device=response_mask.device)
    first = (t + lo).clamp(max=length)
    last = torch.full_like(t, length) if window < 0 else (t + window + 1).clamp(max=length)
    counts = prefix[:, last] - prefix[:, first]
    return counts.clamp(min=0).to(torch.float64)  # exact integers


def discounted_future_sum(
    x: Tensor,
    response_mask: Tensor,
    *,
    gamma: float,
    start: Start = "include_current",
    window: int = -1,
    average: bool = False,
) -> Tensor:
    """Step 5 with the §4 extensions, on already-masked contributions x [B, L]; x's dtype.

    include_current: distances d ≥ 0; exclude_current: d ≥ 1 (computed as γ·(window W−1 sum at
    t+1), which is exact and makes exclude with W = 0 identically 0). ``average`` divides by the
    count of valid positions in the same distance set (filtered tokens still counted), floored at 1.
    """
    if start not in ("include_current", "exclude_current"):
        raise ValueError(f"unknown future_kl_start {start!r}; valid: include_current, exclude_current")
    if window < -1:
        raise ValueError(f"future_kl_window must be -1 (unbounded) or >= 0, got {window}")
    if start == "include_current":
        total = windowed_discounted_sum(x, gamma, window)
        lo = 0
    elif window == 0:
        total = torch.zeros_like(x)
        lo = 1
    else:
        inner = windowed_discounted_sum(x, gamma, window - 1 if window > 0 else -1)
        total = gamma * _shift_left(inner, 1)
        lo = 1
    if average:
        total = (total / _window_counts(response_mask, lo, window).clamp(min=1.0)).to(x.dtype)
    return total


def future_kl(
    log_prob: Tensor,
    old_log_prob: Tensor,
    response_mask: Tensor,
    *,
    decay_rate: float,
    clip_ratio_c: float,
    start: Start = "include_current",
    window: int = -1,
    average: bool = False,
    participation_filter: ParticipationFilter = "all_tokens",
    advantages: Tensor | None = None,
) -> Tensor:
    """F [B, L] of docs/spec.md §3 step 5 (filter of step 3 applied); detached, never differentiated.

    Defaults give the official quantity: include the current token, no window, plain sum, every
    token with δ > ln c removed. Returned in float32 (float64 if ``log_prob`` is float64); bf16/fp16
    inputs are upcast. F is also defined on padded positions (padding contributes 0 but still
    counts as distance, as in the official code).
    """
    mask = response_mask.bool()
    with torch.no_grad():
        delta = clamped_log_ratio(log_prob.detach(), old_log_prob, mask)
        keep = participation_mask(delta, clip_ratio_c, advantages=advantages, mode=participation_filter)
        return future_kl_from_delta(
            delta, mask, keep, decay_rate=decay_rate, start=start, window=window, average=average
        )


def future_kl_from_delta(
    delta: Tensor,
    response_mask: Tensor,
    keep: Tensor,
    *,
    decay_rate: float,
    start: Start = "include_current",
    window: int = -1,
    average: bool = False,
) -> Tensor:
    """Steps 4-5 from the clamped log-ratio δ, the bool mask and the participation mask p."""
    delta = delta.detach()
    x = torch.where(response_mask & keep, delta, 0.0)
    total = discounted_future_sum(
        x, response_mask, gamma=gamma_from_decay_rate(decay_rate), start=start, window=window, average=average
    )
    return total.to(delta.dtype)
