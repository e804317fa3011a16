"""avg@k, pass@k, cons@k and the bootstrap interval against hand-computed cases and brute force."""

from __future__ import annotations

import itertools
from math import comb

import pytest

from fipo_engine.eval.stats import (
    avg_at_k,
    bootstrap_ci,
    cons_correct,
    length_summary,
    majority_vote,
    pass_at_k,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 0, 1, 0.0),
        (4, 1, 1, 0.25),
        (4, 2, 2, 1 - 1 / 6),      # 1 - C(2,2)/C(4,2)
        (4, 1, 4, 1.0),            # n = k: any correct sample
        (5, 2, 3, 0.9),            # 1 - C(3,3)/C(5,3)
        (5, 3, 3, 1.0),            # n - c < k: every 3-subset has a correct one
        (10, 3, 2, 1 - 21 / 45),   # 1 - C(7,2)/C(10,2)
        (32, 0, 32, 0.0),
    ],
)
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_k_equals_subset_enumeration() -> None:
    """The estimator is the fraction of k-subsets of the n samples containing a correct one."""
    for n in range(1, 8):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(samples, k))
                brute = sum(any(s) for s in subsets) / comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_pass_at_k_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_avg_at_k() -> None:
    assert avg_at_k(32, 8) == 0.25
    with pytest.raises(ValueError):
        avg_at_k(0, 0)


def test_majority_vote_and_ties() -> None:
    assert majority_vote(["1", "2", "2", None, None, None]) == ("2", 2)  # None never votes
    assert majority_vote(["3", "4", "4", "3"]) == ("4", 2)  # tie: "4" reached 2 first
    assert majority_vote([None, None]) == (None, 0)


def test_cons_correct() -> None:
    assert cons_correct(["7", "7", "8"], [True, True, False])
    assert not cons_correct(["8", "7", "8"], [False, True, False])  # the right answer is a minority
    assert not cons_correct([None, None], [False, False])


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0, 0.0, 0.5, 0.25, 1.0, 0.0, 0.75, 0.5]
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < sum(values) / len(values) < high
    assert low >= 0.0 and high <= 1.0
    assert bootstrap_ci([0.5] * 5) == (0.5, 0.5)  # no spread, no width
    wide = bootstrap_ci([0.0, 1.0] * 3)
    narrow = bootstrap_ci([0.0, 1.0] * 300)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_length_summary() -> None:
    assert length_summary([1, 2, 3, 4]) == (2.5, 3.25)
    assert length_summary([]) == (None, None)
