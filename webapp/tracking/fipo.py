"""What the samples page needs to explain a token's FIPO weight, read from a run's stored config.

The page rebuilds a token's future-KL F_t = Σ_{k≥t} γ^(k−t)·x_k from the sample's per-token
log-ratios and shows where it came from, so it needs the same settings the loss used: γ (from the
half-life τ), ln c (the participation filter), the influence-weight clip bounds and the safety rule.
They are derived here with the engine's own functions, so the page and the loss cannot disagree.
Pure functions of the config dict.
"""

from __future__ import annotations

import math
from typing import Any


def fipo_settings(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``fipo`` block of the samples API (docs/api-contract.md), or None when the config has no
    valid policy-loss section (an old or foreign config: the page then explains nothing)."""
    from pydantic import ValidationError

    from fipo_engine.algorithms.config import PolicyLossConfig
    from fipo_engine.algorithms.losses import SAFETY_BAND, influence_bounds

    algorithm = (config or {}).get("algorithm")
    if not isinstance(algorithm, dict):
        return None
    try:
        loss = PolicyLossConfig.model_validate(algorithm.get("loss") or {})
    except (ValidationError, ValueError, TypeError):
        return None
    low, high = influence_bounds(loss)
    return {
        "policy_loss": str(algorithm.get("policy_loss", "fipo")),
        "decay_rate": loss.decay_rate,
        "gamma": loss.gamma,
        "clip_ratio_c": loss.clip_ratio_c,
        "ln_c": math.log(loss.clip_ratio_c),
        "participation_filter": loss.participation_filter,
        "future_kl_start": loss.future_kl_start,
        "future_kl_window": loss.future_kl_window,
        "future_kl_average": loss.future_kl_average,
        "weight_low": low,
        "weight_high": high,
        "safety_thresh": loss.safety_thresh,
        "safety_band": list(SAFETY_BAND),
    }
