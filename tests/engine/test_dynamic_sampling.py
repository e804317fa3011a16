"""Dynamic sampling and the DAPO overlong penalty against hand-computed cases (FIPO_SPEC.md §2)."""

from __future__ import annotations

import pytest

from fipo_engine.rewards import overlong_penalty
from fipo_engine.trainer.sampling import enough_groups, filter_groups


def test_groups_with_equal_outcomes_are_dropped() -> None:
    correct = [
        True, False, True,    # group 0: mixed -> kept
        True, True, True,     # group 1: all correct -> dropped
        False, False, False,  # group 2: all wrong -> dropped
        False, False, True,   # group 3: mixed -> kept
    ]
    result = filter_groups(correct, 3)
    assert result.kept == [0, 3]
    assert result.all_correct == [1]
    assert result.all_wrong == [2]
    assert result.total == 4


def test_groups_of_one_are_kept() -> None:
    assert filter_groups([True, False, True], 1).kept == [0, 1, 2]


def test_ragged_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="groups of 3"):
        filter_groups([True, False], 3)


@pytest.mark.parametrize(
    ("kept", "target", "drawn", "limit", "stop"),
    [
        (16, 16, 1, 4, True),   # full
        (20, 16, 2, 4, True),   # over-full (truncated later)
        (10, 16, 3, 4, False),  # keep drawing
        (10, 16, 4, 4, True),   # limit reached
        (0, 16, 99, 0, False),  # 0 = no limit
    ],
)
def test_when_to_stop_drawing(kept: int, target: int, drawn: int, limit: int, stop: bool) -> None:
    assert enough_groups(kept, target, drawn, limit) is stop


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, 0.0),
        (16384, 0.0),        # penalty starts after Lmax - Lbuf = 16384 (32B recipe)
        (16385, -1 / 4096),
        (18432, -0.5),       # half-way into the buffer
        (20480, -1.0),       # at the hard limit: -factor
    ],
)
def test_overlong_penalty_recipe_values(length: int, expected: float) -> None:
    assert overlong_penalty(length, 20480, 4096, 1.0) == pytest.approx(expected)


def test_overlong_penalty_scales_with_factor_and_small_buffers() -> None:
    # cpu-demo shape: Lmax 24, buffer 8 -> free up to 16 tokens, -0.5*factor at 20
    assert overlong_penalty(16, 24, 8, 0.5) == 0.0
    assert overlong_penalty(20, 24, 8, 0.5) == pytest.approx(-0.25)
    assert overlong_penalty(24, 24, 8, 0.5) == pytest.approx(-0.5)
