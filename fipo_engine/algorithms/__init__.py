"""FIPO, DAPO and GRPO math: pure functions over tensors, each registered by name.

Entry points (other areas and external checks call exactly these):

- ``outcome_advantages(name, scores, group_ids, *, eps=1e-6) -> Tensor[n]``  (grpo, dr_grpo, rloo)
- ``future_kl(log_prob, old_log_prob, response_mask, *, decay_rate, clip_ratio_c, ...) -> Tensor[B, L]``
- ``policy_loss(name, log_prob, old_log_prob, advantages, response_mask, config) -> PolicyLossOutput``
  (ppo, dapo, fipo)
- ``aggregate_loss(loss_mat, mask, mode)``  (token-mean, seq-mean-token-sum, seq-mean-token-mean,
  seq-mean-token-sum-norm)

The registries are declared in ``fipo_engine.registry`` (a leaf module, so the run config can
read them without an import cycle) and filled by the modules here; a registry imports its module
the first time it is read, so it is complete whichever is imported first.
"""

# Note: the attribute ``future_kl`` of this package is the function below, not the module; import
# helpers with ``from ...future_kl import name``.
from fipo_engine.algorithms.advantages import outcome_advantages
from fipo_engine.algorithms.aggregation import aggregate_loss
from fipo_engine.algorithms.config import PolicyLossConfig
from fipo_engine.algorithms.future_kl import future_kl
from fipo_engine.algorithms.losses import PolicyLossOutput, policy_loss
from fipo_engine.registry import ADVANTAGE_ESTIMATORS, AGGREGATIONS, POLICY_LOSSES, RegistryError

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "AGGREGATIONS",
    "POLICY_LOSSES",
    "PolicyLossConfig",
    "PolicyLossOutput",
    "RegistryError",
    "aggregate_loss",
    "future_kl",
    "outcome_advantages",
    "policy_loss",
]
