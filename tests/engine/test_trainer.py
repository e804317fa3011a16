"""The native trainer: resume equivalence, dry runs of the paper presets, the logged events."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fipo_engine import metrics_catalog
from fipo_engine.config import RunConfig, apply_overrides, preset
from fipo_engine.tracking import Spool
from fipo_engine.trainer.loop import train

TINY_RUN = {
    "model.tiny": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                   "max_position_embeddings": 64},
    "data.train_size": 200, "data.eval_size": 4,
    "rollout.n": 4, "rollout.max_new_tokens": 6, "rollout.generation_batch_size": 64,
    "reward.overlong_buffer": {"enable": True, "length": 2, "penalty_factor": 1.0},
    "trainer.train_batch_size": 4, "trainer.gen_batch_size": 4, "trainer.ppo_mini_batch_size": 2,
    "trainer.micro_batch_size": 4, "trainer.max_num_gen_batches": 2, "trainer.sft_warmup_steps": 3,
    "trainer.eval_every": 2, "trainer.eval_k": 2, "trainer.save_every": 1, "trainer.log_samples": 2,
    "trainer.lr": 1e-3, "trainer.warmup_steps": 1, "trainer.device": "cpu",
    # A random tiny model is never right, so dynamic sampling would keep no group; without it the
    # overlong penalty still spreads the scores, giving non-zero advantages and real updates.
    "trainer.dynamic_sampling": False,
}
VOLATILE = ("timing/", "perf/")  # wall-clock metrics differ between runs by nature


def tiny_config(**extra: object) -> RunConfig:
    return apply_overrides(preset("cpu-demo"), {**TINY_RUN, **extra})


def _stable(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if not k.startswith(VOLATILE)} for h in history]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    newest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return load_file(newest / "model" / "model.safetensors")


def test_two_steps_plus_resume_equals_four_straight(tmp_path: Path) -> None:
    straight = train(tiny_config(**{"trainer.total_steps": 4}), tmp_path / "straight", progress=False)
    first = train(tiny_config(**{"trainer.total_steps": 2}), tmp_path / "resumed", progress=False)
    second = train(tiny_config(**{"trainer.total_steps": 4}), tmp_path / "resumed", resume=True, progress=False)

    assert [h["step"] for h in first.history + second.history] == [1, 2, 3, 4]
    assert _stable(first.history + second.history) == _stable(straight.history)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert second.last_eval == straight.last_eval

    # The spool continues its sequence numbers across the restart.
    events = Spool(tmp_path / "resumed").events()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # The samples of the resumed steps are those of the straight run, token for token.
    def samples(run: str) -> list[dict]:
        return [{k: v for k, v in e.items() if k not in ("seq", "_time")}
                for e in Spool(tmp_path / run).events() if e["type"] == "sample" and e["step"] > 2]
    assert samples("resumed") == samples("straight") != []


def test_events_use_catalog_names_and_compact_per_token_channels(tmp_path: Path) -> None:
    train(tiny_config(**{"trainer.total_steps": 2}), tmp_path, progress=False)
    events = Spool(tmp_path).events()
    types = [e["type"] for e in events]
    assert types[0] == "status" and events[0]["state"] == "running"
    assert {"metric", "sample", "eval", "checkpoint"} <= set(types)

    names = {name for e in events if e["type"] == "metric" for name in e["values"]}
    unknown = {n for n in names if not metrics_catalog.is_known(n)}
    assert not unknown, f"not in the metric catalog: {sorted(unknown)}"
    for required in ("reward/mean", "accuracy/mean", "response_length/mean", "response_length/p75",
                     "response_length/clip_ratio", "actor/pg_clipfrac", "actor/influence_weights_mean",
                     "actor/grad_norm", "actor/lr", "actor/entropy", "perf/tokens_per_second", "timing/generate_s"):
        assert required in names, required

    sample = next(e for e in events if e["type"] == "sample")
    n_tokens = len(sample["tokens"])
    assert n_tokens >= 1 and "".join(sample["tokens"]).startswith(sample["response"][:1])
    for channel in ("logprob", "old_logprob", "ratio", "future_kl", "influence", "advantage",
                    "weighted_advantage", "entropy"):
        assert len(sample[channel]) == n_tokens, channel
        # float16 precision: each value is the shortest decimal of a float16 (round-trips through it)
        assert all(v is None or float(str(np.float16(v))) == v for v in sample[channel])
    assert (tmp_path / "config.json").is_file()
    ckpt = sorted((tmp_path / "checkpoints").glob("step_*"))[-1]
    assert json.loads((ckpt / "config.json").read_text()) == json.loads(tiny_config(**{"trainer.total_steps": 2}).to_json())
    assert {p.name for p in ckpt.iterdir()} >= {"model", "optimizer.pt", "rng.pt", "trainer_state.json", "config.json"}


def test_fipo_weights_move_off_one_after_the_first_mini_batch(tmp_path: Path) -> None:
    result = train(tiny_config(**{"trainer.total_steps": 2, "trainer.lr": 1e-2}), tmp_path, progress=False)
    maxima = [h.get("actor/influence_weights_max") for h in result.history]
    assert any(m is not None and m > 1.0 for m in maxima)


def test_samples_come_from_every_mini_batch_and_say_which(tmp_path: Path) -> None:
    """Future-KL is 0 in the first mini-batch, so samples are spread over all of them and labelled."""
    cfg = tiny_config(**{"trainer.total_steps": 2, "trainer.train_batch_size": 4, "trainer.gen_batch_size": 4,
                         "trainer.ppo_mini_batch_size": 1, "trainer.log_samples": 4, "trainer.lr": 1e-2})
    train(cfg, tmp_path, progress=False)
    samples = [e for e in Spool(tmp_path).events() if e["type"] == "sample"]
    for step in (1, 2):
        mine = [e for e in samples if e["step"] == step]
        assert {e["num_minibatches"] for e in mine} == {4}
        assert sorted(e["minibatch"] for e in mine) == [0, 1, 2, 3]
    for e in samples:
        n_tokens = len(e["tokens"])
        assert len(e["log_ratio"]) == n_tokens
        if e["minibatch"] == 0:  # trained on the policy that sampled it: ratio 1, F exactly 0
            assert set(e["future_kl"]) == {0.0} and set(e["log_ratio"]) == {0.0}
    # later mini-batches see a moved policy
    assert any(v != 0.0 for e in samples if e["minibatch"] > 0 for v in e["future_kl"])


@pytest.mark.parametrize(("k", "positions"), [(1, [3]), (2, [1, 3]), (3, [1, 2, 3]), (4, [0, 1, 2, 3]),
                                              (6, [0, 1, 1, 2, 3, 3])])
def test_sample_indices_spread_over_mini_batches_later_first(k: int, positions: list[int]) -> None:
    from fipo_engine.trainer.metrics import minibatch_of_groups, sample_indices

    order = [5, 2, 7, 0, 1, 6, 3, 4]  # 8 groups, 2 per mini-batch: 4 mini-batches
    where = minibatch_of_groups(order, 2)
    assert where[5] == where[2] == 0 and where[3] == where[4] == 3
    rows = sample_indices(8, 4, k, seed=1, step=3, minibatch_of_group=where)
    groups = [r // 4 for r in rows]
    assert len(set(groups)) == len(groups) == k  # distinct groups
    assert sorted(where[g] for g in groups) == positions
    assert rows == sample_indices(8, 4, k, seed=1, step=3, minibatch_of_group=where)  # seeded


def test_sample_indices_fill_from_other_mini_batches_when_one_is_short() -> None:
    from fipo_engine.trainer.metrics import sample_indices

    where = [0, 0, 0, 1]  # the last mini-batch is short (4 groups, 3 per mini-batch)
    rows = sample_indices(4, 2, 3, seed=0, step=1, minibatch_of_group=where)
    assert len({r // 2 for r in rows}) == 3 and 3 in {r // 2 for r in rows}


@pytest.mark.parametrize("name", ["fipo-32b", "fipo-7b", "dapo-32b"])
def test_paper_presets_dry_run_one_step(name: str, tmp_path: Path) -> None:
    from fipo_engine.cli import main

    assert main(["train", name, "--dry-run", "--out", str(tmp_path), "--no-progress"]) == 0
    events = Spool(tmp_path).events()
    assert events[-1]["type"] == "status" and events[-1]["state"] == "succeeded"
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["algorithm"] == preset(name).model_dump(mode="json")["algorithm"]  # the loss as in the paper


def test_invalid_config_exits_2_and_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from fipo_engine.cli import main

    assert main(["train", "cpu-demo", "--set", "trainer.lr=-1", "--out", str(tmp_path)]) == 2
    assert "trainer.lr" in capsys.readouterr().err
    assert main(["train", "no-such-preset", "--out", str(tmp_path)]) == 2
