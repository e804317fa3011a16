"""The public surface of fipo_engine.algorithms: exports, registries, and registry errors."""

from __future__ import annotations

import pytest
import torch

import fipo_engine.algorithms as algorithms
from fipo_engine.algorithms import ADVANTAGE_ESTIMATORS, AGGREGATIONS, POLICY_LOSSES, RegistryError
from fipo_engine.registry import Registry


def test_registries_are_complete_after_package_import() -> None:
    assert ADVANTAGE_ESTIMATORS.names() == ["dr_grpo", "grpo", "rloo"]
    assert POLICY_LOSSES.names() == ["dapo", "fipo", "ppo"]
    assert AGGREGATIONS.names() == [
        "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm", "token-mean",
    ]


def test_public_entry_points_are_exported() -> None:
    for name in ("outcome_advantages", "future_kl", "policy_loss", "PolicyLossConfig", "PolicyLossOutput",
                 "aggregate_loss"):
        assert name in algorithms.__all__
        assert callable(getattr(algorithms, name))


def test_registering_a_taken_name_raises() -> None:
    with pytest.raises(RegistryError, match="already registered"):
        POLICY_LOSSES.register("fipo")(lambda *a: None)
    assert POLICY_LOSSES.get("fipo").__name__ == "fipo_loss"  # the original is untouched


def test_unknown_names_raise_listing_the_valid_ones() -> None:
    x = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(RegistryError, match="unknown policy loss 'grpo'; valid names: dapo, fipo, ppo"):
        algorithms.policy_loss("grpo", x, x, x, mask)
    with pytest.raises(RegistryError, match="valid names: dr_grpo, grpo, rloo"):
        algorithms.outcome_advantages("ppo", torch.zeros(2), [0, 0])
    with pytest.raises(RegistryError, match=r"valid names: seq-mean-token-mean, .*token-mean"):
        algorithms.aggregate_loss(x, mask, "mean")


def test_a_fresh_registry_registers_reads_and_lists() -> None:
    reg: Registry = Registry("thing")
    reg.register("b")(len)
    reg.register("a")(abs)
    assert reg["a"] is abs and "b" in reg and "c" not in reg
    assert list(reg) == ["a", "b"] and len(reg) == 2
    assert str(RegistryError("plain message")) == "plain message"


def test_config_validators_read_the_registries() -> None:
    from fipo_engine.algorithms.config import PolicyLossConfig

    with pytest.raises(ValueError, match="unknown loss_agg_mode 'sum'; valid: seq-mean-token-mean"):
        PolicyLossConfig(loss_agg_mode="sum")
    for mode in AGGREGATIONS.names():
        assert PolicyLossConfig(loss_agg_mode=mode).loss_agg_mode == mode
