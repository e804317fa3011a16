"""The trainer's phases one at a time (``fipo_engine/trainer/phases.py``), without a model where they need none."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fipo_engine import token_channels as token_channel_catalog
from fipo_engine.algorithms import policy_loss
from fipo_engine.algorithms.losses import PolicyLossOutput
from fipo_engine.data import Problem
from fipo_engine.trainer import phases
from fipo_engine.trainer.loop import train
from fipo_engine.trainer.state import Group, RolloutBatch, StepMetrics, StopRequested
from fipo_engine.trainer.stop import StopRequest
from tests.engine.test_trainer import tiny_config


def _run(**extra: object) -> Any:
    """The slice of a ``Run`` the sampling phases read: config, stop flag, tracker."""
    logged: list[str] = []
    run = SimpleNamespace(cfg=tiny_config(**extra), stopping=lambda: False, last_underfill_log=None,
                          tracker=SimpleNamespace(log=logged.append))
    run.logged = logged
    return run


def _group(correct: list[bool]) -> Group:
    n = len(correct)
    return Group(problem=Problem(id="p", prompt="1+1", answer="2", source="test"), prompt_ids=[1, 2], texts=["2"] * n,
                 response_ids=[[5, 6]] * n, truncated=[False] * n, scores=[1.0 if c else -1.0 for c in correct],
                 correct=correct)


def test_loss_channels_name_fields_of_the_loss_output() -> None:
    fields = {f.name for f in dataclasses.fields(PolicyLossOutput)}
    assert set(phases.LOSS_CHANNELS.values()) <= fields


def test_token_channels_are_the_sample_viewers_in_order() -> None:
    log_prob, old = torch.full((2, 3), -1.0), torch.full((2, 3), -1.2)
    adv, mask = torch.ones(2, 3), torch.ones(2, 3)
    out = policy_loss("fipo", log_prob, old, adv, mask)
    channels = phases.token_channels(out, log_prob, old, adv, torch.zeros(2, 3), 1)
    assert list(channels) == ["logprob", "old_logprob", "advantage", "entropy", *token_channel_catalog.loss_outputs()]
    assert set(channels) == {c.name for c in token_channel_catalog.CHANNELS}  # the trainer fills every channel
    assert all(v.shape == (3,) and v.dtype == torch.float32 and not v.requires_grad for v in channels.values())
    assert torch.allclose(channels["ratio"], out.ratio[1])


def test_filter_groups_keeps_mixed_groups_and_says_when_to_stop_drawing() -> None:
    run = _run(**{"trainer.dynamic_sampling": True, "trainer.train_batch_size": 2, "trainer.max_num_gen_batches": 3,
                  "rollout.n": 2})
    batch = RolloutBatch(start_rng={})
    phases.filter_groups(run, batch, [_group([True, False]), _group([True, True]), _group([False, False])])
    assert len(batch.groups) == 1 and batch.stop_reason is None  # 1 kept of 3: another batch may fill it
    assert (batch.groups_seen, batch.all_correct, batch.all_wrong, batch.generated) == (3, 1, 1, 6)
    phases.filter_groups(run, batch, [_group([False, True])])
    assert len(batch.groups) == 2 and batch.stop_reason == "full"
    assert batch.correct == [True, False, True, True, False, False, False, True]


def test_without_dynamic_sampling_one_batch_is_kept_whole() -> None:
    run = _run(**{"trainer.dynamic_sampling": False, "rollout.n": 2})
    batch = RolloutBatch(start_rng={})
    phases.filter_groups(run, batch, [_group([True, True]), _group([False, False])])
    assert len(batch.groups) == 2 and batch.stop_reason == "full" and batch.groups_seen == 0


def test_an_unfilled_batch_logs_a_line_every_ten_steps() -> None:
    run = _run(**{"trainer.dynamic_sampling": True, "trainer.train_batch_size": 4, "rollout.n": 2})
    for step in range(1, 13):
        batch = RolloutBatch(start_rng={}, groups=[_group([True, False])], scores=[1.0, -1.0], correct=[True, False],
                             num_gen_batches=1, groups_seen=2, all_wrong=1, stop_reason="hopeless")
        metrics = StepMetrics()
        phases.rollout_metrics(run, step, batch, metrics)
        assert metrics.values["sampling/fill_fraction"] == 0.25
    assert [line.split(":")[0] for line in run.logged] == ["step 1", "step 11"]


def test_step_metrics_keep_the_phases_order_then_timing_then_throughput() -> None:
    metrics = StepMetrics(values={"reward/gen_mean": 0.5, "actor/lr": 1e-3}, trained_tokens=30)
    metrics.timing["timing/update_s"] = 1.0
    out = metrics.emitted(step_s=2.0, generated=8, generated_tokens=10)
    assert list(out) == ["reward/gen_mean", "actor/lr", "timing/generate_s", "timing/reward_s", "timing/update_s",
                         "timing/step_s", "perf/samples_per_second", "perf/tokens_per_second"]
    assert out["perf/samples_per_second"] == 4.0 and out["perf/tokens_per_second"] == 20.0


def test_check_stop_carries_the_rng_state_to_save() -> None:
    stop = StopRequest()
    run = SimpleNamespace(stopping=stop.requested)
    phases.check_stop(run, rng={"torch": 1})  # not requested: nothing happens
    stop.request()
    with pytest.raises(StopRequested) as raised:
        phases.check_stop(run, rng={"torch": 1})
    assert raised.value.rng == {"torch": 1} and not raised.value.during_warm_start


@pytest.mark.parametrize(("warmup", "step", "lr"), [(0, 0, 1e-3), (4, 0, 2.5e-4), (4, 1, 5e-4), (4, 9, 1e-3)])
def test_learning_rate_warms_up_linearly(warmup: int, step: int, lr: float) -> None:
    cfg = tiny_config(**{"trainer.lr": 1e-3, "trainer.warmup_steps": warmup})
    assert phases.lr_at(cfg, step) == pytest.approx(lr)


def test_a_stop_between_phases_is_caught_once_by_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stop noticed after the update (``log_step``) checkpoints the finished step and skips its evaluation."""
    stop = StopRequest()
    original = phases.log_step

    def log_then_stop(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        stop.request("SIGTERM")

    import fipo_engine.trainer.loop as loop

    monkeypatch.setattr(loop, "log_step", log_then_stop)
    result = train(tiny_config(**{"trainer.total_steps": 2, "trainer.sft_warmup_steps": 0, "trainer.eval_every": 1}),
                   tmp_path, progress=False, stop=stop)
    assert result.stopped == "SIGTERM" and result.final_step == 1
    assert result.last_checkpoint is not None and result.last_checkpoint.name == "step_000001"
    assert result.last_eval is not None  # only the step-0 evaluation ran
