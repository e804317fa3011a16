"""FIPO as an OpenRLHF ``PolicyLoss``: OpenRLHF's call signature and 5-tuple, our math inside.

``build_fipo_policy_loss(PolicyLoss)`` returns a subclass of the class it is given (OpenRLHF's own
``openrlhf.models.loss.PolicyLoss``), so this module never imports OpenRLHF: the setup hook passes
the real class in on a GPU node, the tests pass the class loaded from OpenRLHF's wheel.

Contract kept (OpenRLHF 0.11.2, ``ActorPPOTrainer.training_step``):
``forward(log_probs, old_log_probs, advantages, action_mask=None, rollout_log_probs=None, dp_size=1,
batch_num_tokens=None, global_batch_size=None) -> (loss, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio)``.

The per-token loss is ``fipo_engine.algorithms.policy_loss`` (the math exists once). Aggregation:
- without global counts (``batch_num_tokens``/``global_batch_size`` None) it is exactly ours, in the
  configured ``loss_agg_mode``;
- with them (OpenRLHF's normal path) each micro-batch contributes its own mean over FIPO's final
  mask, weighted by its share of OpenRLHF's global count: token mode
  ``(Σ final·ℓ / Σ final) × (Σ action_mask / batch_num_tokens) × dp_size``, sequence mode
  ``(mean of per-sequence means over final rows) × (non-empty rows / global_batch_size) × dp_size``.
  OpenRLHF counts its denominators from ``action_mask`` before the forward pass, so they include the
  tokens of sequences FIPO then invalidates (dual-clipped more than once); dividing Σ final·ℓ by them
  directly would shrink the loss of every micro-batch that lost a sequence. With one micro-batch per
  optimizer step this is exactly the native trainer's loss (its token mean over the final mask),
  and ``actor/pg_loss`` is that token mean, as in the native path and the paper.
``last_output`` keeps the ``PolicyLossOutput`` of the last call for metrics and per-token samples.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from fipo_engine.algorithms import PolicyLossConfig, policy_loss

CONFIG_ENV = "FIPO_CONFIG_JSON"


def loss_settings_from_env(environ: dict[str, str] | None = None) -> tuple[str, PolicyLossConfig]:
    """(policy loss name, its config) from the run config in ``$FIPO_CONFIG_JSON``; recipe FIPO if unset."""
    raw = (os.environ if environ is None else environ).get(CONFIG_ENV)
    if not raw:
        return "fipo", PolicyLossConfig()
    algorithm = json.loads(raw).get("algorithm") or {}
    return algorithm.get("policy_loss", "fipo"), PolicyLossConfig(**(algorithm.get("loss") or {}))


def _scalar(value: float | None, like: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor for OpenRLHF's metrics; a metric with no data (None) is reported as 0."""
    return torch.tensor(0.0 if value is None else float(value), device=like.device)


def build_fipo_policy_loss(base: type) -> type:
    """Subclass OpenRLHF's ``PolicyLoss`` (given as ``base``) so that it computes our policy loss."""

    class FipoPolicyLoss(base):  # type: ignore[misc, valid-type]
        """OpenRLHF ``PolicyLoss`` computing ``fipo_engine.algorithms.policy_loss`` (FIPO, DAPO or PPO)."""

        def __init__(self, *args: Any, loss_name: str | None = None, loss_config: PolicyLossConfig | None = None,
                     **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.policy_loss_type != "ppo":
                raise ValueError(f"the FIPO loss replaces the ppo loss type only, not {self.policy_loss_type!r}")
            if self.is_correction_level != "off":
                raise ValueError("the FIPO loss does not implement OpenRLHF's vLLM IS correction; leave it off")
            env_name, env_cfg = loss_settings_from_env()
            self.loss_name = loss_name or env_name
            self.loss_config = loss_config or env_cfg
            self._check_agreement()
            self.last_output = None

        def _check_agreement(self) -> None:
            """OpenRLHF's clip flags and our config must say the same, or someone edited one of them."""
            cfg = self.loss_config
            theirs = (self.clip_eps_low, self.clip_eps_high, self.dual_clip)
            ours = (cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c)
            if any(t is None or abs(float(t) - o) > 1e-12 for t, o in zip(theirs, ours, strict=True)):
                raise ValueError(f"OpenRLHF clip flags (eps low/high, dual clip) {theirs} disagree with the "
                                 f"run config {ours}; regenerate the command with `fipo openrlhf-command`")

        def forward(self, log_probs: torch.Tensor, old_log_probs: torch.Tensor, advantages: torch.Tensor,
                    action_mask: torch.Tensor | None = None, rollout_log_probs: torch.Tensor | None = None,
                    dp_size: int = 1, batch_num_tokens: float | None = None,
                    global_batch_size: float | None = None) -> tuple:
            mask = torch.ones_like(log_probs, dtype=torch.bool) if action_mask is None else action_mask.bool()
            cfg = self.loss_config
            if batch_num_tokens is None and global_batch_size is None:
                out = policy_loss(self.loss_name, log_probs, old_log_probs, advantages, mask, cfg)
                loss = out.loss
            elif self.token_level_loss:
                # our token mean over the final mask, weighted by this micro-batch's share of the tokens
                out = policy_loss(self.loss_name, log_probs, old_log_probs, advantages, mask,
                                  cfg.model_copy(update={"loss_agg_mode": "token-mean"}))
                tokens = mask.sum()
                total = batch_num_tokens if batch_num_tokens is not None else tokens.clamp(min=1)
                loss = out.loss * tokens / total * dp_size
            else:
                # our mean of per-sequence means over the final mask, weighted by this micro-batch's rows
                out = policy_loss(self.loss_name, log_probs, old_log_probs, advantages, mask,
                                  cfg.model_copy(update={"loss_agg_mode": "seq-mean-token-mean"}))
                rows = mask.any(dim=-1).sum()
                total = global_batch_size if global_batch_size is not None else rows.clamp(min=1)
                loss = out.loss * rows / total * dp_size
            self.last_output = out
            clip_ratio = _scalar(out.metrics.get("actor/pg_clipfrac"), log_probs)
            ppo_kl = _scalar(out.metrics.get("actor/ppo_kl"), log_probs)
            return loss, clip_ratio, ppo_kl, None, None

    FipoPolicyLoss.__qualname__ = FipoPolicyLoss.__name__ = "FipoPolicyLoss"
    FipoPolicyLoss.__module__ = __name__
    return FipoPolicyLoss
