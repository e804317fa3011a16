"""Dynamic sampling (and its cap on unfillable steps) and the DAPO overlong penalty (docs/trainer.md "Dynamic sampling")."""

from __future__ import annotations

from pathlib import Path

import pytest

from fipo_engine.config import apply_overrides, preset
from fipo_engine.rewards import overlong_penalty
from fipo_engine.tracking import Spool
from fipo_engine.trainer.loop import train
from fipo_engine.trainer.sampling import filter_groups, stop_drawing, underfill_message


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
    ("kept", "seen", "target", "per_batch", "drawn", "limit", "stop"),
    [
        (16, 24, 16, 24, 1, 4, "full"),
        (20, 48, 16, 24, 2, 4, "full"),     # over-full (truncated later)
        (10, 20, 16, 8, 3, 4, None),        # 10 + 0.5 * 8 more expected: keep drawing
        (10, 32, 16, 8, 4, 4, "limit"),
        (0, 9999, 16, 8, 99, 0, None),      # 0 = no limit, even when nothing is ever kept
        (0, 64, 16, 64, 1, 10, "hopeless"),  # no mixed group at all: nine more batches would not help
        (1, 16, 32, 16, 1, 4, "hopeless"),  # 1 + 1/16 * 48 = 4 expected < 16 (half of 32)
        (4, 16, 32, 16, 1, 4, None),        # 4 + 4/16 * 48 = 16 expected: exactly half, keep drawing
    ],
)
def test_when_to_stop_drawing(kept: int, seen: int, target: int, per_batch: int, drawn: int, limit: int,
                              stop: str | None) -> None:
    assert stop_drawing(kept, seen, target, per_batch, drawn, limit) == stop


def test_the_underfill_line_says_how_full_and_why() -> None:
    line = underfill_message(3, trained=2, train_batch_size=16, num_gen_batches=1, reason="hopeless", kept=2,
                             all_correct=0, all_wrong=62, accuracy=0.01, group_size=4, max_num_gen_batches=10)
    assert line.startswith("step 3: trained on 2 of 16 groups: only 2 of 64 groups had mixed rewards "
                           "(62 all wrong, 0 all correct); accuracy is near 0 on this data (0.01)")
    assert "stopped after 1 generation batch:" in line and "sampling/fill_fraction" in line
    easy = underfill_message(9, trained=5, train_batch_size=8, num_gen_batches=4, reason="limit", kept=5,
                             all_correct=27, all_wrong=0, accuracy=0.97, group_size=8, max_num_gen_batches=4)
    assert "accuracy is near 1 on this data (0.97)" in easy and "stopped at trainer.max_num_gen_batches=4" in easy


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


def test_a_step_that_cannot_fill_stops_drawing_and_says_why(tmp_path: Path) -> None:
    """A random tiny model is never right: every group is all wrong. The old loop drew all 10 generation
    batches (ten times a normal step) and trained on nothing, silently; now it stops after the first,
    records the fill fraction, and logs one line naming the cause."""
    cfg = apply_overrides(preset("cpu-demo"), {
        "model.tiny": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                       "max_position_embeddings": 64},
        "data.train_size": 100, "data.eval_size": 0, "rollout.n": 4, "rollout.max_new_tokens": 4,
        "reward.overlong_buffer": {"enable": True, "length": 2},
        "trainer.total_steps": 3, "trainer.train_batch_size": 4, "trainer.gen_batch_size": 4,
        "trainer.ppo_mini_batch_size": 2, "trainer.max_num_gen_batches": 10, "trainer.sft_warmup_steps": 0,
        "trainer.eval_every": 0, "trainer.save_every": 0, "trainer.device": "cpu"})
    result = train(cfg, tmp_path, progress=False)

    assert [h["sampling/num_gen_batches"] for h in result.history] == [1.0, 1.0, 1.0]
    assert [h["sampling/fill_fraction"] for h in result.history] == [0.0, 0.0, 0.0]
    assert all(h["accuracy/gen_mean"] == 0.0 for h in result.history)
    lines = [e["text"] for e in Spool(tmp_path).events() if e["type"] == "log"]
    assert len(lines) == 1  # once, not every step
    assert lines[0].startswith("step 1: trained on 0 of 4 groups: only 0 of 4 groups had mixed rewards "
                               "(4 all wrong, 0 all correct); accuracy is near 0 on this data (0.00)")
