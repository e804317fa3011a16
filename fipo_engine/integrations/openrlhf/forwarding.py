"""OpenRLHF -> our tracking protocol: per-step metrics under catalog names, and K per-token samples.

One writer per run: the tracking protocol numbers events per run (``seq``), so every process of the
OpenRLHF job sends through one named Ray actor, ``FipoTracker``, which owns a
``fipo_engine.tracking.Tracker`` (local spool + background sender to the control plane):

- actor workers (rank 0) collect K samples of the last micro-batch of each PPO phase (the most
  off-policy one, where FIPO's weights are not 1) and hand them to the tracker;
- the ``PPOTrainer`` process, which logs each global step, hands the step's metrics to the tracker,
  which writes them and then the buffered samples under that step number.

Everything here except ``FipoTracker``/``tracker_handle`` is pure and tested on CPU.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from fipo_engine.metrics_catalog import is_known

# OpenRLHF 0.11.2 status keys -> our metric catalog names (first key present wins).
OPENRLHF_METRICS: dict[str, tuple[str, ...]] = {
    "reward/mean": ("rollout/reward_mean", "reward"),
    "reward/std": ("rollout/reward_std",),
    "accuracy/mean": ("accuracy",),
    "response_length/mean": ("rollout/response_length_mean", "response_length"),
    "response_length/clip_ratio": ("rollout/truncated_rate",),
    "sampling/kept_group_fraction": ("dynamic_filtering_pass_rate",),
    "actor/pg_loss": ("policy_loss",),
    "actor/pg_clipfrac": ("ppo_clip_ratio",),
    "actor/ppo_kl": ("ppo_kl",),
    "actor/entropy": ("entropy_loss",),
    "actor/grad_norm": ("actor_grad_norm",),
    "actor/lr": ("actor_lr",),
    "timing/generate_s": ("timing/generation",),
    "timing/old_log_prob_s": ("timing/make_experience",),
    "timing/update_s": ("timing/ppo_train",),
    "timing/step_s": ("timing/step_total",),
}
LOSS_METRIC_PREFIX = "fipo:"  # our loss metrics ride in OpenRLHF's status dict under this prefix
SAMPLE_CHANNELS = ("logprob", "old_logprob", "ratio", "future_kl", "influence", "advantage", "weighted_advantage")


def _number(value: Any) -> float | None:
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def map_openrlhf_status(status: Mapping[str, Any]) -> dict[str, float]:
    """One logged OpenRLHF step -> ``{catalog name: value}``; our loss's own metrics take precedence."""
    values: dict[str, float] = {}
    for ours, keys in OPENRLHF_METRICS.items():
        for key in keys:
            if key in status and (number := _number(status[key])) is not None:
                values[ours] = number
                break
    for key, raw in status.items():
        name = key.removeprefix(LOSS_METRIC_PREFIX)
        if key.startswith(LOSS_METRIC_PREFIX) and is_known(name) and (number := _number(raw)) is not None:
            values[name] = number
    return values


def add_loss_metrics(status: dict[str, Any], metrics: Mapping[str, float | None], tensor: Callable[[float], Any]
                     ) -> None:
    """Add our loss metrics to a ``training_step`` result, token-weighted like OpenRLHF's own.

    Every data-parallel rank must emit the same keys (OpenRLHF all-reduces per key), so a metric
    without data on this micro-batch (None) is sent as 0.0 rather than left out.
    """
    for name, value in metrics.items():
        key = f"{LOSS_METRIC_PREFIX}{name}"
        status["metrics"][key] = tensor(0.0 if value is None else float(value))
        status["weights"][key] = "token"


def _row(values: Any, mask_row: Any) -> list[float]:
    return [round(float(v), 5) for v, keep in zip(values.tolist(), mask_row.tolist(), strict=True) if keep]


def collect_samples(*, sequences: Any, action_mask: Any, attention_mask: Any, output: Any, log_probs: Any,
                    old_log_probs: Any, advantages: Any, rewards: Any, decode: Callable[[list[int]], str],
                    tokens: Callable[[list[int]], list[str]], k: int) -> list[dict[str, Any]]:
    """Up to ``k`` samples of one micro-batch with their per-token arrays (the tracking ``sample`` shape).

    ``sequences`` [B, S] are prompt + response ids with the response in the last T = action_mask.shape[1]
    positions; the loss tensors of ``output`` (a ``PolicyLossOutput``) are [B, T].
    """
    t_len = action_mask.shape[1]
    samples = []
    for i in range(min(k, sequences.shape[0])):
        mask = action_mask[i].bool()
        prompt_ids = [int(t) for t, m in zip(sequences[i, :-t_len].tolist(), attention_mask[i, :-t_len].tolist(),
                                             strict=True) if m]
        response_ids = [int(t) for t, m in zip(sequences[i, -t_len:].tolist(), mask.tolist(), strict=True) if m]
        reward = _number(rewards[i]) if rewards is not None else None
        channels = {
            "logprob": log_probs[i], "old_logprob": old_log_probs[i], "ratio": output.ratio[i],
            "future_kl": output.future_kl[i], "influence": output.influence_weights[i],
            "advantage": advantages[i], "weighted_advantage": output.weighted_advantages[i],
        }
        samples.append({
            "prompt": decode(prompt_ids), "response": decode(response_ids), "reward": reward,
            "correct": None if reward is None else reward > 0, "tokens": tokens(response_ids),
            **{name: _row(values.detach().float().cpu(), mask.cpu()) for name, values in channels.items()},
        })
    return samples


def samples_to_keep(environ: Mapping[str, str] | None = None) -> int:
    """K = ``trainer.log_samples`` of the run config (default 4)."""
    raw = (os.environ if environ is None else environ).get("FIPO_CONFIG_JSON")
    return int(((json.loads(raw).get("trainer") or {}).get("log_samples", 4)) if raw else 4)


# ------------------------------------------------------------------------------ the one writer
class FipoTracker:
    """Ray actor (``num_cpus=0``) owning the run's ``Tracker``; methods run one at a time."""

    def __init__(self, run_dir: str, server: str | None, run_id: str | None, token: str | None) -> None:
        from fipo_engine.tracking import Tracker

        self.tracker = Tracker(run_dir, server=server or None, run_id=run_id, token=token)
        self.has_server = bool(server)
        self.pending: list[dict[str, Any]] = []

    def add_samples(self, samples: list[dict[str, Any]]) -> None:
        self.pending = list(samples)

    def step(self, step: int, values: dict[str, float], wait_s: float = 10.0) -> int:
        """Write the step's metrics, then its samples; wait a little for delivery (not the trainer's time)."""
        seq = self.tracker.metric(step, values)
        for index, sample in enumerate(self.pending):
            seq = self.tracker.sample(step, index, **sample)
        self.pending = []
        deadline = time.monotonic() + wait_s
        while self.has_server and self.tracker.acked_seq < seq and time.monotonic() < deadline:
            time.sleep(0.1)
        return seq

    def close(self) -> bool:
        return self.tracker.close()


_HANDLES: dict[str, Any] = {}


def tracker_handle() -> Any:
    """The job's ``FipoTracker`` actor, created on first use (one per run, found by name afterwards)."""
    run_id = os.environ.get("FIPO_RUN_ID", "local")
    if run_id not in _HANDLES:
        import ray

        run_dir = f"{os.environ.get('FIPO_RUNS_DIR') or '/tmp/fipo-runs'}/{run_id}"  # as the native entrypoint
        actor = ray.remote(num_cpus=0)(FipoTracker).options(name=f"fipo-tracker-{run_id}", get_if_exists=True)
        _HANDLES[run_id] = actor.remote(run_dir, os.environ.get("FIPO_SERVER_URL"), run_id,
                                        os.environ.get("FIPO_RUN_TOKEN"))
    return _HANDLES[run_id]
