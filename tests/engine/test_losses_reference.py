"""Plain-Python references for docs/spec.md §3-§6, and the randomized comparison against them.

The references are written from the spec, one token at a time, with Python floats (float64) and
the O(L²) definition of the future KL: no torch, no vectorisation, nothing shared with the code
under test. Other test modules import ``ref_future_kl`` and ``ref_policy_loss`` from here.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from fipo_engine.algorithms import PolicyLossConfig, policy_loss
from fipo_engine.metrics_catalog import is_known

Row = list[float]


def ref_future_kl(
    x: list[Row],
    mask: list[list[bool]],
    *,
    decay_rate: float,
    start: str = "include_current",
    window: int = -1,
    average: bool = False,
) -> list[Row]:
    """F_t = Σ_{k: d=k−t in D} γ^d·x_k by the O(L²) definition (§3 step 5, §4 extensions)."""
    gamma = 2.0 ** (-1.0 / decay_rate)
    lo = 0 if start == "include_current" else 1
    out = []
    for xs, ms in zip(x, mask, strict=True):
        length = len(xs)
        row = []
        for t in range(length):
            hi = length - 1 if window < 0 else min(length - 1, t + window)
            total, count = 0.0, 0
            for k in range(t + lo, hi + 1):
                total += gamma ** (k - t) * xs[k]
                count += ms[k]
            row.append(total / max(count, 1) if average else total)
        out.append(row)
    return out


def ref_masked_mean(values: list[float], mask: list[bool]) -> float | None:
    n = sum(mask)
    return None if n == 0 else sum(v for v, m in zip(values, mask, strict=True) if m) / n


def ref_quantile(values: list[float], q: float) -> float | None:
    return None if not values else float(np.quantile(np.asarray(values, dtype=np.float64), q))


@dataclass
class RefOutput:
    loss: float
    metrics: dict[str, float | None]
    future_kl: list[Row] = field(repr=False)
    weights: list[Row] = field(repr=False)
    weighted_adv: list[Row] = field(repr=False)
    per_token: list[Row] = field(repr=False)
    final_mask: list[list[bool]] = field(repr=False)


def ref_policy_loss(
    name: str,
    log_prob: list[Row],
    old_log_prob: list[Row],
    advantages: list[Row],
    mask: list[list[bool]],
    cfg: PolicyLossConfig,
) -> RefOutput:
    """The whole forward pass of §3 (fipo) or its dapo/ppo subsets, token by token."""
    c = cfg.clip_ratio_c
    eps_low = cfg.clip_ratio_low
    eps_high = cfg.clip_ratio_low if name == "ppo" else cfg.clip_ratio_high
    n_rows, length = len(log_prob), len(log_prob[0]) if log_prob else 0
    delta = [[max(-20.0, min(20.0, log_prob[b][t] - old_log_prob[b][t])) if mask[b][t] else 0.0
              for t in range(length)] for b in range(n_rows)]
    ratio = [[math.exp(d) for d in row] for row in delta]
    adv = [[advantages[b][t] if mask[b][t] else 0.0 for t in range(length)] for b in range(n_rows)]
    ln_c = math.log(c)

    if name == "fipo":
        def participates(b: int, t: int) -> bool:
            high = delta[b][t] > ln_c
            if cfg.participation_filter == "none":
                return True
            if cfg.participation_filter == "negative_advantage_only":
                return not (high and adv[b][t] < 0)
            return not high

        x = [[delta[b][t] if (mask[b][t] and participates(b, t)) else 0.0 for t in range(length)]
             for b in range(n_rows)]
        fkl = ref_future_kl(x, mask, decay_rate=cfg.decay_rate, start=cfg.future_kl_start,
                            window=cfg.future_kl_window, average=cfg.future_kl_average)
        eps_f = cfg.future_kl_clip_ratio
        if eps_f == 0.0:
            lower, upper = 0.0, 10.0
        else:
            lower, upper = (1.0 if cfg.future_kl_clip_high_only else 1.0 - eps_f), 1.0 + eps_f
        raw = [[math.exp(f) for f in row] for row in fkl]
        weights = []
        for b in range(n_rows):
            row = []
            for t in range(length):
                w = min(raw[b][t], 10.0) if eps_f == 0.0 else min(max(raw[b][t], lower), upper)
                if cfg.safety_thresh is not None and adv[b][t] < 0 and ratio[b][t] > cfg.safety_thresh:
                    w = min(max(w, 0.8), 1.0)
                row.append(w)
            weights.append(row)
    else:
        fkl = [[0.0] * length for _ in range(n_rows)]
        raw = [[1.0] * length for _ in range(n_rows)]
        weights = [[1.0] * length for _ in range(n_rows)]

    per_token, clipped, dual = [], [], []
    for b in range(n_rows):
        lrow, crow, drow = [], [], []
        for t in range(length):
            a_w = adv[b][t] * weights[b][t]
            r = ratio[b][t]
            l1 = -a_w * r
            l2 = -a_w * min(max(r, 1.0 - eps_low), 1.0 + eps_high)
            l_clip = max(l1, l2)
            if name == "ppo":
                loss_t, is_dual = l_clip, False
            else:
                l3 = -a_w * c
                loss_t = min(l3, l_clip) if a_w < 0 else l_clip
                is_dual = adv[b][t] < 0 and l_clip > l3
            lrow.append(loss_t)
            crow.append(l2 > l1)
            drow.append(is_dual and mask[b][t])
        per_token.append(lrow)
        clipped.append(crow)
        dual.append(drow)

    invalid = [name == "fipo" and sum(drow) > 1 for drow in dual]
    final = [[mask[b][t] and not invalid[b] for t in range(length)] for b in range(n_rows)]
    loss = ref_aggregate(per_token, final, cfg.loss_agg_mode)

    flat_mask = [m for row in mask for m in row]

    def flat(rows: list[Row] | list[list[bool]]) -> list:
        return [v for row in rows for v in row]

    def frac(cond: list[bool]) -> float | None:
        return ref_masked_mean([float(v) for v in cond], flat_mask)

    f_ratio, f_adv, f_w = flat(ratio), flat(adv), flat(weights)
    neg = [r for r, a, m in zip(f_ratio, f_adv, flat_mask, strict=True) if m and a < 0]
    pos = [r for r, a, m in zip(f_ratio, f_adv, flat_mask, strict=True) if m and a > 0]
    valid_w = [w for w, m in zip(f_w, flat_mask, strict=True) if m]
    non_empty = [any(row) for row in mask]
    metrics: dict[str, float | None] = {
        "actor/pg_loss": loss,
        "actor/pg_clipfrac": frac(flat(clipped)),
        "actor/ppo_kl": ref_masked_mean([-d for d in flat(delta)], flat_mask),
        "actor/pg_clipfrac_lower": frac(flat(dual)),
        "actor/influence_weights_mean": ref_masked_mean(f_w, flat_mask),
        "actor/influence_weights_min": min(valid_w) if valid_w else None,
        "actor/influence_weights_max": max(valid_w) if valid_w else None,
        "actor/invalidated_seq_frac": (sum(i and n for i, n in zip(invalid, non_empty, strict=True)) / sum(non_empty)
                                       if any(non_empty) else None),
        "actor/neg_ratio_2_3": frac([2 <= r < 3 and a < 0 for r, a in zip(f_ratio, f_adv, strict=True)]),
        "actor/neg_ratio_3_4": frac([3 <= r < 4 and a < 0 for r, a in zip(f_ratio, f_adv, strict=True)]),
        "actor/neg_ratio_4_10": frac([4 <= r < c and a < 0 for r, a in zip(f_ratio, f_adv, strict=True)]),
        "actor/neg_is_max": max(neg) if neg else None,
        "actor/neg_is_p995": ref_quantile(neg, 0.995),
        "actor/neg_is_p999": ref_quantile(neg, 0.999),
        "actor/neg_is_p75": ref_quantile(neg, 0.75),
        "actor/pos_is_max": max(pos) if pos else None,
        "actor/pos_is_median": ref_quantile(pos, 0.5),
        "actor/pos_is_p75": ref_quantile(pos, 0.75),
        "actor/pos_is_p995": ref_quantile(pos, 0.995),
        "actor/pos_is_p999": ref_quantile(pos, 0.999),
        "actor/pos_is_p25": ref_quantile(pos, 0.25),
        "actor/pos_is_min": min(pos) if pos else None,
        "actor/pos_mini_frac": frac([r < 1e-3 and a > 0 for r, a in zip(f_ratio, f_adv, strict=True)]),
    }
    if name == "fipo":
        up = frac([w >= upper - 1e-7 for w in f_w])
        low = frac([w <= lower + 1e-7 for w in f_w])
        f_raw = flat(raw)
        valid_raw = [v for v, m in zip(f_raw, flat_mask, strict=True) if m]
        metrics.update({
            "actor/IW_upper_clip_ratio": up,
            "actor/IW_lower_clip_ratio": low,
            "actor/IW_overall_clip_ratio": None if up is None else up + low,
            "actor/influence_weights_mean_raw": ref_masked_mean(f_raw, flat_mask),
            "actor/raw_influence_weights_min": min(valid_raw) if valid_raw else None,
            "actor/raw_influence_weights_max": max(valid_raw) if valid_raw else None,
        })
    weighted = [[adv[b][t] * weights[b][t] for t in range(length)] for b in range(n_rows)]
    return RefOutput(loss, metrics, fkl, weights, weighted, per_token, final)


def ref_aggregate(per_token: list[Row], mask: list[list[bool]], mode: str) -> float:
    """§5, with our NaN-free seq-mean-token-mean (§11.5)."""
    sums = [sum(v for v, m in zip(row, ms, strict=True) if m) for row, ms in zip(per_token, mask, strict=True)]
    counts = [sum(ms) for ms in mask]
    if mode == "token-mean":
        return sum(sums) / (sum(counts) + 1e-8)
    if mode == "seq-mean-token-sum":
        return sum(sums) / len(sums) if sums else 0.0
    if mode == "seq-mean-token-mean":
        means = [s / n for s, n in zip(sums, counts, strict=True) if n > 0]
        return sum(means) / len(means) if means else 0.0
    if mode == "seq-mean-token-sum-norm":
        return sum(sums) / max(len(per_token[0]) if per_token else 1, 1)
    raise ValueError(mode)


# ------------------------------------------------------------------------------- random batches
GARBAGE = (float("nan"), float("inf"), -float("inf"), 1e30, -7.0)


def random_batch(seed: int, *, max_rows: int = 5, max_len: int = 90, dtype: torch.dtype = torch.float64):
    """A batch with right padding, holes, empty rows, garbage in padding, spikes above ln c and safety.

    Returns (log_prob, old_log_prob, advantages, mask) as tensors.
    """
    rng = random.Random(seed)
    n_rows, length = rng.randint(1, max_rows), rng.randint(1, max_len)
    old = [[rng.gauss(-1.5, 1.0) for _ in range(length)] for _ in range(n_rows)]
    new, adv, mask = [], [], []
    for b in range(n_rows):
        valid = rng.choice([0, length, rng.randint(0, length)])  # empty, full, or right-padded
        row_mask = [t < valid and rng.random() > 0.1 for t in range(length)]  # holes
        a = rng.choice([-1.5, -0.4, 0.0, 0.7, 1.3])
        row_new, row_adv = [], []
        for t in range(length):
            d = rng.gauss(0.0, 0.6)
            u = rng.random()
            if u < 0.05:
                d = rng.uniform(2.4, 4.0)  # ratio above c = 10 (filtered, dual-clipped if A < 0)
            elif u < 0.10:
                d = rng.uniform(1.2, 2.2)  # ratio in [3.3, 9]: above a 7B safety threshold of 3
            elif u < 0.12:
                d = rng.uniform(21.0, 30.0) * rng.choice([-1, 1])  # beyond the ±20 clamp
            row_new.append(old[b][t] + d)
            row_adv.append(a)
            if not row_mask[t]:  # garbage must not leak
                row_new[t] = rng.choice(GARBAGE)
                row_adv[t] = rng.choice(GARBAGE)
        new.append(row_new)
        adv.append(row_adv)
        mask.append(row_mask)
    t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
    return t(new), t(old), t(adv), torch.tensor(mask, dtype=torch.bool)


CONFIGS = {
    "fipo-32b": PolicyLossConfig.fipo_32b(),
    "fipo-7b": PolicyLossConfig.fipo_7b(),
    "no-clip": PolicyLossConfig(future_kl_clip_ratio=0.0),
    "tau1-seqmean": PolicyLossConfig(decay_rate=1.0, loss_agg_mode="seq-mean-token-mean"),
    "tau1e9-seqsum": PolicyLossConfig(decay_rate=1e9, loss_agg_mode="seq-mean-token-sum"),
    "sumnorm-nosafety": PolicyLossConfig(loss_agg_mode="seq-mean-token-sum-norm", safety_thresh=None),
    "neg-only-exclude-window": PolicyLossConfig(
        participation_filter="negative_advantage_only", future_kl_start="exclude_current", future_kl_window=7),
    "nofilter-average": PolicyLossConfig(participation_filter="none", future_kl_average=True, decay_rate=4.0),
    "include-window0-average": PolicyLossConfig(future_kl_window=0, future_kl_average=True),
    "exclude-unbounded-average": PolicyLossConfig(future_kl_start="exclude_current", future_kl_average=True),
}


def assert_metrics_close(got: dict[str, float | None], want: dict[str, float | None], tol: float) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] is not None, key
            assert got[key] == pytest.approx(value, rel=tol, abs=tol), key


def check_against_reference(name: str, cfg: PolicyLossConfig, seed: int, tol: float = 1e-9) -> None:
    log_prob, old, adv, mask = random_batch(seed)
    log_prob.requires_grad_(True)
    out = policy_loss(name, log_prob, old, adv, mask, cfg)
    ref = ref_policy_loss(name, log_prob.tolist(), old.tolist(), adv.tolist(), mask.tolist(), cfg)
    assert out.loss.item() == pytest.approx(ref.loss, rel=tol, abs=tol)
    assert_metrics_close(out.metrics, ref.metrics, tol)
    assert out.final_mask.tolist() == ref.final_mask
    m = mask
    as_t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    # per-token fields are compared on valid tokens (padding is documented as "defined, unused")
    for got, want in ((out.future_kl, ref.future_kl), (out.influence_weights, ref.weights),
                      (out.weighted_advantages, ref.weighted_adv), (out.per_token_loss, ref.per_token)):
        torch.testing.assert_close(got[m], as_t(want)[m], rtol=tol, atol=tol)
    assert all(is_known(k) for k in out.metrics)
    out.loss.backward()
    assert torch.isfinite(log_prob.grad).all()


@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_fipo_matches_the_token_loop_reference(config_name: str) -> None:
    for seed in range(12):
        check_against_reference("fipo", CONFIGS[config_name], seed)


@pytest.mark.parametrize("name", ["ppo", "dapo"])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_ppo_and_dapo_match_the_token_loop_reference(name: str, agg: str) -> None:
    for seed in range(6):
        check_against_reference(name, PolicyLossConfig(loss_agg_mode=agg), 100 + seed)


def test_float32_inputs_match_the_float64_reference_to_float32_precision() -> None:
    for seed in range(8):
        log_prob, old, adv, mask = random_batch(200 + seed, dtype=torch.float32)
        cfg = PolicyLossConfig()
        out = policy_loss("fipo", log_prob, old, adv, mask, cfg)
        ref = ref_policy_loss("fipo", log_prob.tolist(), old.tolist(), adv.tolist(), mask.tolist(), cfg)
        assert out.loss.dtype == torch.float32
        assert out.loss.item() == pytest.approx(ref.loss, rel=1e-5, abs=1e-5)
        torch.testing.assert_close(out.future_kl[mask].double(), torch.tensor(ref.future_kl, dtype=torch.float64)[mask],
                                   rtol=1e-5, atol=1e-5)


def test_random_batches_exercise_every_branch() -> None:
    """Guard for the randomized comparison: the generator must hit the rare branches it claims to."""
    counts = dict.fromkeys(("invalidated", "single_dual", "safety", "filtered", "empty_row", "clamped"), 0)
    for seed in range(12):
        log_prob, old, adv, mask = random_batch(seed)
        out = policy_loss("fipo", log_prob, old, adv, mask, PolicyLossConfig.fipo_7b())
        neg = (torch.where(mask, adv, 0.0) < 0) & mask
        dual = (neg & (out.log_ratio > math.log(10.0))).sum(dim=1)
        counts["invalidated"] += int((dual > 1).sum())
        counts["single_dual"] += int((dual == 1).sum())
        counts["safety"] += int((neg & (out.ratio > 3.0)).sum())
        counts["filtered"] += int(((out.log_ratio > math.log(10.0)) & mask).sum())
        counts["empty_row"] += int((~mask.any(dim=1)).sum())
        counts["clamped"] += int((out.log_ratio.abs() == 20.0).sum())
    assert all(v > 0 for v in counts.values()), counts
