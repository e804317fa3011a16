"""Outcome advantages (docs/spec.md §2.3) against a per-group loop written from the spec."""

from __future__ import annotations

import random
import statistics

import pytest
import torch

from fipo_engine.algorithms import outcome_advantages


def loop_reference(name: str, scores: list[float], groups: list, eps: float = 1e-6) -> list[float]:
    out = []
    for i, (score, g) in enumerate(zip(scores, groups, strict=True)):
        members = [s for s, h in zip(scores, groups, strict=True) if h == g]
        if len(members) == 1:
            out.append({"grpo": score / (1.0 + eps), "dr_grpo": score, "rloo": 0.0}[name])
            continue
        mean = sum(members) / len(members)
        if name == "grpo":
            out.append((score - mean) / (statistics.stdev(members) + eps))
        elif name == "dr_grpo":
            out.append(score - mean)
        else:  # rloo: the mean of the *other* members is the baseline
            others = [s for j, (s, h) in enumerate(zip(scores, groups, strict=True)) if h == g and j != i]
            out.append(score - sum(others) / len(others))
    return out


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_matches_the_loop_over_random_groups(name: str) -> None:
    for seed in range(20):
        rng = random.Random(seed)
        n = rng.randint(1, 40)
        groups = [rng.choice("abcdefg") for _ in range(n)]
        scores = [rng.choice([1.0, -1.0, rng.uniform(-2, 1)]) for _ in range(n)]
        got = outcome_advantages(name, torch.tensor(scores, dtype=torch.float64), groups)
        assert got.tolist() == pytest.approx(loop_reference(name, scores, groups), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_constant_groups_are_exactly_zero(name: str) -> None:
    scores = torch.tensor([0.1, 0.1, 0.1, 0.7, 0.7, -1.0, 1.0], dtype=torch.float32)
    got = outcome_advantages(name, scores, [0, 0, 0, 1, 1, 2, 2])
    assert got[:5].tolist() == [0.0] * 5
    assert got[5].item() < 0 < got[6].item()


def test_grpo_uses_the_unbiased_std_and_eps() -> None:
    got = outcome_advantages("grpo", torch.tensor([1.0, -1.0]), ["p", "p"])
    std = 2 ** 0.5  # unbiased std of {1, -1}; the population std would be 1
    assert got.tolist() == pytest.approx([1 / (std + 1e-6), -1 / (std + 1e-6)])
    loose = outcome_advantages("grpo", torch.tensor([1.0, -1.0]), ["p", "p"], eps=0.5)
    assert loose[0].item() == pytest.approx(1 / (std + 0.5))


def test_singletons_follow_verl() -> None:
    scores = torch.tensor([3.0])
    assert outcome_advantages("grpo", scores, ["x"]).item() == pytest.approx(3.0 / (1 + 1e-6))
    assert outcome_advantages("dr_grpo", scores, ["x"]).item() == 3.0
    assert outcome_advantages("rloo", scores, ["x"]).item() == 0.0


def test_group_ids_as_strings_tuples_or_int_tensors_agree() -> None:
    scores = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    as_str = outcome_advantages("grpo", scores, ["u1", "u2", "u1", "u2", "u1"])
    as_tuple = outcome_advantages("grpo", scores, [(1, "a"), (2, "b"), (1, "a"), (2, "b"), (1, "a")])
    as_tensor = outcome_advantages("grpo", scores, torch.tensor([70, -3, 70, -3, 70]))
    assert torch.equal(as_str, as_tuple) and torch.equal(as_str, as_tensor)


def test_dtypes_and_empty_input() -> None:
    assert outcome_advantages("grpo", torch.tensor([1.0, 2.0], dtype=torch.float64), [0, 0]).dtype == torch.float64
    assert outcome_advantages("grpo", torch.tensor([1, 2]), [0, 0]).dtype == torch.float32
    assert outcome_advantages("rloo", torch.zeros(0), []).shape == (0,)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="entries"):
        outcome_advantages("grpo", torch.zeros(3), [0, 0])
    with pytest.raises(ValueError, match="1-D"):
        outcome_advantages("grpo", torch.zeros(2, 2), [0, 0])
    with pytest.raises(ValueError, match="integer"):
        outcome_advantages("grpo", torch.zeros(2), torch.tensor([0.0, 1.0]))
