"""``PolicyLossConfig``: every knob of the PPO / DAPO / FIPO policy losses, with official names.

Field names are those of the official verl ``PolicyLossConfig`` (docs/spec.md §3, §4), so a
recipe line such as ``actor.policy_loss.decay_rate=32`` maps one to one. Defaults are the
official Qwen2.5-32B recipe (docs/spec.md §7, §11.3). The config is frozen: the trainer, the
web form and every checkpoint see the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fipo_engine.registry import AGGREGATIONS, registry_name

# The paper's 7B setting (Table 3), as it differs from the 32B recipe defaults: symmetric influence
# weights [0.8, 1.2] and safety threshold 3. ``PolicyLossConfig.fipo_7b`` and the run preset
# ``fipo-7b`` (fipo_engine/config.py) both read it.
FIPO_7B_LOSS: Mapping[str, object] = MappingProxyType({"future_kl_clip_high_only": False, "safety_thresh": 3.0})


class PolicyLossConfig(BaseModel):
    """Hyper-parameters of the clipped policy loss and of FIPO's future-KL influence weights."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    clip_ratio_low: float = Field(
        0.2, ge=0.0, lt=1.0,
        description="ε_low: the ratio is clipped below at 1-ε_low (PPO/DAPO; recipe 0.2).",
    )
    clip_ratio_high: float = Field(
        0.28, ge=0.0,
        description="ε_high: clip-higher from DAPO, the ratio is clipped above at 1+ε_high (recipe 0.28).",
    )
    clip_ratio_c: float = Field(
        10.0, gt=1.0,
        description="c: dual-clip constant (Ye et al. 2020) bounding the loss of negative-advantage tokens; "
        "also FIPO's participation-filter threshold ln c (recipe 10).",
    )
    loss_agg_mode: registry_name(AGGREGATIONS) = Field(
        "token-mean",
        description="How per-token losses become one scalar: token-mean (DAPO/recipe), seq-mean-token-sum, "
        "seq-mean-token-mean, seq-mean-token-sum-norm (Dr.GRPO).",
    )
    decay_rate: float = Field(
        32.0, ge=1.0,
        description="τ: half-life in tokens of the future-KL discount, γ = 2^(-1/τ) (recipe 32).",
    )
    future_kl_clip_ratio: float = Field(
        0.2, ge=0.0,
        description="ε_f: influence weights exp(F) are clipped to [1, 1+ε_f] (high-only) or [1-ε_f, 1+ε_f]; "
        "0 means no clip except a cap at 10 (recipe 0.2).",
    )
    future_kl_clip_high_only: bool = Field(
        True,
        description="Clip the influence weight to [1, 1+ε_f] (32B recipe) instead of [1-ε_f, 1+ε_f] (7B setting).",
    )
    safety_thresh: float | None = Field(
        10.0, gt=0.0,
        description="s: for negative-advantage tokens whose ratio exceeds s the weight is clipped to [0.8, 1.0]; "
        "None disables the rule (recipe 10; 7B setting 3).",
    )
    chunk_size: int = Field(
        128, ge=1,
        description="Kept for parity with the official config (its O(L²) chunked evaluation); our O(L) scan "
        "does not need it and the result never depends on it.",
    )
    future_kl_start: Literal["include_current", "exclude_current"] = Field(
        "include_current",
        description="Extension (not read by the official loss): include_current sums distances d ≥ 0 "
        "(official), exclude_current d ≥ 1.",
    )
    future_kl_window: int = Field(
        -1, ge=-1,
        description="Extension: only distances d ≤ W contribute; -1 = unbounded (official).",
    )
    future_kl_average: bool = Field(
        False,
        description="Extension: divide the discounted sum by the number of valid positions in its window "
        "(official: plain sum).",
    )
    participation_filter: Literal["all_tokens", "negative_advantage_only", "none"] = Field(
        "all_tokens",
        description="Which tokens with log-ratio > ln c are removed from future-KL sums: all_tokens "
        "(official code), negative_advantage_only (paper Eq. 5 reading), none (vanilla FutureKL, collapses).",
    )

    @model_validator(mode="after")
    def _check_clip_order(self) -> PolicyLossConfig:
        if self.clip_ratio_c <= 1.0 + self.clip_ratio_high:
            raise ValueError("clip_ratio_c must exceed 1 + clip_ratio_high for the dual clip to make sense")
        return self

    # ---- named presets (docs/spec.md §7) -------------------------------------------------
    @classmethod
    def fipo_32b(cls, **overrides: object) -> PolicyLossConfig:
        """The official Qwen2.5-32B FIPO recipe: τ=32, weights in [1.0, 1.2], s=10, c=10."""
        return cls(**overrides)

    @classmethod
    def fipo_7b(cls, **overrides: object) -> PolicyLossConfig:
        """The paper's 7B setting (Table 3): symmetric weights [0.8, 1.2], safety threshold 3."""
        return cls(**{**FIPO_7B_LOSS, **overrides})

    @classmethod
    def dapo_32b(cls, **overrides: object) -> PolicyLossConfig:
        """The DAPO baseline of the same recipe (use with policy loss ``dapo``; FIPO knobs unused)."""
        return cls(**overrides)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> PolicyLossConfig:
        """Build a named preset: ``fipo-32b``, ``fipo-7b`` or ``dapo-32b``."""
        builders = {"fipo-32b": cls.fipo_32b, "fipo-7b": cls.fipo_7b, "dapo-32b": cls.dapo_32b}
        if name not in builders:
            raise KeyError(f"unknown policy-loss preset {name!r}; valid: {', '.join(builders)}")
        return builders[name](**overrides)

    @property
    def gamma(self) -> float:
        """Per-token discount γ = 2^(-1/τ)."""
        return 2.0 ** (-1.0 / self.decay_rate)
