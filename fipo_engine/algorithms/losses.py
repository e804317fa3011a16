"""Policy losses by name: ``ppo``, ``dapo`` and ``fipo`` (docs/spec.md §3), one entry point.

How the three differ (each adds to the one before):

1. ``ppo``: the clipped surrogate max(−A·r, −A·clip(r, 1−ε, 1+ε)) with a symmetric ε =
   ``clip_ratio_low`` (``clip_ratio_high`` and ``clip_ratio_c`` are not read).
2. ``dapo``: clip-higher (ε_low ≠ ε_high, DAPO arXiv 2503.14476) plus the dual clip of Ye et al.
   2020 (negative-advantage tokens lose at most |A|·c). This is verl's vanilla loss, the recipe's
   DAPO baseline.
3. ``fipo``: every advantage is first multiplied by a detached influence weight
   w = clip(exp(F)), F the discounted future KL of the tokens that follow (future_kl.py); a
   safety rule caps w for negative tokens with a very large ratio; a sequence with two or more
   dual-clipped tokens is dropped from the loss (not from the metrics).

Every loss is a pure function ``(log_prob, old_log_prob, advantages, response_mask, config) ->
PolicyLossOutput``. Only ``log_prob`` carries gradient, and only through r = exp(δ).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fipo_engine.algorithms.aggregation import aggregate_loss
from fipo_engine.algorithms.config import PolicyLossConfig
from fipo_engine.algorithms.future_kl import clamped_log_ratio, future_kl_from_delta, participation_mask
from fipo_engine.algorithms.metrics import MaskedStats, quantiles, to_floats
from fipo_engine.registry import POLICY_LOSSES

#: The safety rule clips a weight into this band (official constants).
SAFETY_BAND = (0.8, 1.0)
#: With future_kl_clip_ratio = 0 the weight has no lower bound and is capped here (official).
NO_CLIP_CAP = 10.0
#: Tolerance of the IW_*_clip_ratio metrics (official).
CLIP_BOUND_TOL = 1e-7


@dataclass(frozen=True)
class PolicyLossOutput:
    """What a policy loss returns. Every tensor is [B, L] and detached, except ``loss``.

    ``loss`` is 0-dim, in the graph of ``log_prob`` (0 and still differentiable on an empty batch).
    ``metrics`` uses the official names (``actor/...``, fipo_engine.metrics_catalog); a metric
    with no data (empty batch, no negative tokens, ...) is None. ``future_kl`` is 0 and
    ``influence_weights`` 1 for ppo/dapo. ``final_mask`` (bool) is the mask the loss used:
    response_mask minus invalidated sequences. ``log_ratio`` is the clamped δ (0 on padding),
    ``ratio`` = exp(δ), ``per_token_loss`` the unaggregated ℓ.
    """

    loss: Tensor
    metrics: dict[str, float | None]
    future_kl: Tensor
    influence_weights: Tensor
    weighted_advantages: Tensor
    final_mask: Tensor
    ratio: Tensor
    log_ratio: Tensor
    per_token_loss: Tensor


@dataclass(frozen=True)
class _Surrogate:
    per_token: Tensor  # ℓ, with grad
    clipped: Tensor  # L2 > L1: the PPO clip was active (pg_clipfrac)
    dual_clipped: Tensor  # A < 0 and Lclip > L3: cut by the dual clip (pg_clipfrac_lower)


def _clipped_surrogate(
    ratio: Tensor,
    weighted_adv: Tensor,
    adv: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    clip_c: float | None,
) -> _Surrogate:
    """Steps 9-10: PPO clip (possibly asymmetric) and, if ``clip_c`` is given, the dual clip."""
    loss_unclipped = -weighted_adv * ratio  # L1
    loss_clipped = -weighted_adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)  # L2
    loss_clip = torch.maximum(loss_unclipped, loss_clipped)
    clipped = (loss_clipped > loss_unclipped).detach()
    if clip_c is None:
        return _Surrogate(loss_clip, clipped, torch.zeros_like(clipped))
    loss_dual = -weighted_adv * clip_c  # L3
    per_token = torch.where(weighted_adv < 0, torch.minimum(loss_dual, loss_clip), loss_clip)
    # official: the raw advantage's sign with the weighted losses
    dual_clipped = ((adv < 0) & (loss_clip > loss_dual)).detach()
    return _Surrogate(per_token, clipped, dual_clipped)


def _prepare(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes; return (bool mask, clamped δ with grad, advantages zeroed on padding, detached)."""
    if log_prob.dim() != 2:
        raise ValueError(f"log_prob must be [B, L], got shape {tuple(log_prob.shape)}")
    shape = log_prob.shape
    if old_log_prob.shape != shape or response_mask.shape != shape:
        raise ValueError(
            f"log_prob {tuple(shape)}, old_log_prob {tuple(old_log_prob.shape)} and response_mask "
            f"{tuple(response_mask.shape)} must have the same [B, L] shape"
        )
    if advantages.dim() == 1 and advantages.shape[0] == shape[0]:
        advantages = advantages[:, None].expand(shape)  # one advantage per sequence
    if advantages.shape != shape:
        raise ValueError(f"advantages must be [B, L] or [B], got {tuple(advantages.shape)} for {tuple(shape)}")
    mask = response_mask.bool()
    delta = clamped_log_ratio(log_prob, old_log_prob, mask)
    adv = torch.where(mask, advantages.detach().to(delta.dtype), 0.0)
    return mask, delta, adv


def _ratio_metrics(ratio: Tensor, adv: Tensor, stats: MaskedStats, clip_c: float) -> dict[str, Tensor | None]:
    """The importance-ratio statistics of §6 (neg_ratio_*, neg_is_*, pos_is_*, pos_mini_frac)."""
    neg = (adv < 0) & stats.mask
    pos = (adv > 0) & stats.mask
    neg_max, neg_p995, neg_p999, neg_p75 = quantiles(ratio[neg], (1.0, 0.995, 0.999, 0.75))
    pos_q = quantiles(ratio[pos], (1.0, 0.5, 0.75, 0.995, 0.999, 0.25, 0.0))
    return {
        "actor/neg_ratio_2_3": stats.fraction((ratio >= 2.0) & (ratio < 3.0) & neg),
        "actor/neg_ratio_3_4": stats.fraction((ratio >= 3.0) & (ratio < 4.0) & neg),
        "actor/neg_ratio_4_10": stats.fraction((ratio >= 4.0) & (ratio < clip_c) & neg),
        "actor/neg_is_max": neg_max,
        "actor/neg_is_p995": neg_p995,
        "actor/neg_is_p999": neg_p999,
        "actor/neg_is_p75": neg_p75,
        **dict(zip(
            ("actor/pos_is_max", "actor/pos_is_median", "actor/pos_is_p75", "actor/pos_is_p995",
             "actor/pos_is_p999", "actor/pos_is_p25", "actor/pos_is_min"),
            pos_q, strict=True,
        )),
        "actor/pos_mini_frac": stats.fraction((ratio < 1e-3) & pos),
    }


def _finish(
    *,
    config: PolicyLossConfig,
    stats: MaskedStats,
    delta: Tensor,
    ratio: Tensor,
    adv: Tensor,
    weights: Tensor,
    fkl: Tensor,
    surrogate: _Surrogate,
    final_mask: Tensor,
    extra_metrics: dict[str, Tensor | None],
) -> PolicyLossOutput:
    """Step 12 (aggregation over final_mask) and the metrics common to every loss (over response_mask)."""
    loss = aggregate_loss(surrogate.per_token, final_mask, config.loss_agg_mode)
    ratio_d = ratio.detach()
    w_min, w_max = stats.min_max(weights)
    non_empty = stats.mask.any(dim=-1)
    invalidated = non_empty & ~final_mask.any(dim=-1)
    metrics: dict[str, Tensor | float | None] = {
        "actor/pg_loss": loss.detach(),
        "actor/pg_clipfrac": stats.fraction(surrogate.clipped),
        "actor/ppo_kl": stats.mean(-delta.detach()),
        "actor/pg_clipfrac_lower": stats.fraction(surrogate.dual_clipped),
        "actor/influence_weights_mean": stats.mean(weights),
        "actor/influence_weights_min": w_min,
        "actor/influence_weights_max": w_max,
        "actor/invalidated_seq_frac": (
            invalidated.sum().to(torch.float64) / non_empty.sum() if bool(non_empty.any()) else None
        ),
        **_ratio_metrics(ratio_d, adv, stats, config.clip_ratio_c),
        **extra_metrics,
    }
    return PolicyLossOutput(
        loss=loss,
        metrics=to_floats(metrics),
        future_kl=fkl,
        influence_weights=weights,
        weighted_advantages=(adv * weights).detach(),
        final_mask=final_mask,
        ratio=ratio_d,
        log_ratio=delta.detach(),
        per_token_loss=surrogate.per_token.detach(),
    )


def _unweighted(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    config: PolicyLossConfig,
    *,
    clip_high: float,
    clip_c: float | None,
) -> PolicyLossOutput:
    """ppo and dapo: weights 1, future KL 0, no sequence invalidation."""
    mask, delta, adv = _prepare(log_prob, old_log_prob, advantages, response_mask)
    ratio = torch.exp(delta)
    surrogate = _clipped_surrogate(ratio, adv, adv, clip_low=config.clip_ratio_low, clip_high=clip_high, clip_c=clip_c)
    return _finish(
        config=config, stats=MaskedStats(mask), delta=delta, ratio=ratio, adv=adv,
        weights=torch.ones_like(adv), fkl=torch.zeros_like(adv), surrogate=surrogate,
        final_mask=mask, extra_metrics={},
    )


@POLICY_LOSSES.register("ppo")
def ppo_loss(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor, config: PolicyLossConfig
) -> PolicyLossOutput:
    """PPO clipped surrogate with symmetric ε = clip_ratio_low, no dual clip (Schulman et al. 2017)."""
    return _unweighted(
        log_prob, old_log_prob, advantages, response_mask, config, clip_high=config.clip_ratio_low, clip_c=None
    )


@POLICY_LOSSES.register("dapo")
def dapo_loss(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor, config: PolicyLossConfig
) -> PolicyLossOutput:
    """Clip-higher [1−ε_low, 1+ε_high] plus dual clip c; no token reweighting (verl's vanilla loss)."""
    return _unweighted(
        log_prob, old_log_prob, advantages, response_mask, config,
        clip_high=config.clip_ratio_high, clip_c=config.clip_ratio_c,
    )


def influence_bounds(config: PolicyLossConfig) -> tuple[float, float]:
    """(lower, upper) clip bounds of the influence weight (step 6); the IW_* metrics use these."""
    eps = config.future_kl_clip_ratio
    if eps == 0.0:
        return 0.0, NO_CLIP_CAP
    return (1.0 if config.future_kl_clip_high_only else 1.0 - eps), 1.0 + eps


@POLICY_LOSSES.register("fipo")
def fipo_loss(
    log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, response_mask: Tensor, config: PolicyLossConfig
) -> PolicyLossOutput:
    """FIPO (arXiv 2603.19835; docs/spec.md §3 steps 1-12, official code where it departs from the paper)."""
    mask, delta, adv = _prepare(log_prob, old_log_prob, advantages, response_mask)  # step 1
    ratio = torch.exp(delta)  # step 2
    with torch.no_grad():
        keep = participation_mask(  # step 3
            delta, config.clip_ratio_c, advantages=adv, mode=config.participation_filter
        )
        fkl = future_kl_from_delta(  # steps 4-5
            delta, mask, keep, decay_rate=config.decay_rate, start=config.future_kl_start,
            window=config.future_kl_window, average=config.future_kl_average,
        )
        raw = torch.exp(fkl)  # step 6
        lower, upper = influence_bounds(config)  # ε_f = 0: (0, 10), and exp(F) ≥ 0 makes 0 a no-op
        weights = torch.clamp(raw, min=lower, max=upper)
        if config.safety_thresh is not None:  # step 7
            unsafe = (adv < 0) & (ratio > config.safety_thresh)
            weights = torch.where(unsafe, torch.clamp(weights, *SAFETY_BAND), weights)
    weighted_adv = adv * weights  # step 8
    surrogate = _clipped_surrogate(  # steps 9-10
        ratio, weighted_adv, adv,
        clip_low=config.clip_ratio_low, clip_high=config.clip_ratio_high, clip_c=config.clip_ratio_c,
    )
    dual_count = (surrogate.dual_clipped & mask).sum(dim=-1)  # step 11
    final_mask = mask & (dual_count <= 1)[:, None]
    stats = MaskedStats(mask)
    raw_min, raw_max = stats.min_max(raw)
    upper_frac = stats.fraction(weights >= upper - CLIP_BOUND_TOL)
    lower_frac = stats.fraction(weights <= lower + CLIP_BOUND_TOL)
    extra = {
        "actor/IW_upper_clip_ratio": upper_frac,
        "actor/IW_lower_clip_ratio": lower_frac,
        "actor/IW_overall_clip_ratio": None if upper_frac is None else upper_frac + lower_frac,
        "actor/influence_weights_mean_raw": stats.mean(raw),
        "actor/raw_influence_weights_min": raw_min,
        "actor/raw_influence_weights_max": raw_max,
    }
    return _finish(  # step 12 + metrics
        config=config, stats=stats, delta=delta, ratio=ratio, adv=adv, weights=weights, fkl=fkl,
        surrogate=surrogate, final_mask=final_mask, extra_metrics=extra,
    )


def policy_loss(
    name: str,
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    config: PolicyLossConfig | None = None,
) -> PolicyLossOutput:
    """Compute the registered policy loss ``name`` (ppo, dapo, fipo); unknown names raise.

    Shapes: log_prob, old_log_prob, response_mask [B, L]; advantages [B, L] or [B]. bf16/fp16
    inputs are computed in float32. ``config`` defaults to the 32B recipe (``PolicyLossConfig()``).
    """
    fn = POLICY_LOSSES.get(name)
    return fn(log_prob, old_log_prob, advantages, response_mask, config if config is not None else PolicyLossConfig())
