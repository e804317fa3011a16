"""OpenRLHF -> our tracking protocol: per-step metrics under catalog names, and K per-token samples.

One writer per run: the tracking protocol numbers events per run (``seq``), so every process of the
OpenRLHF job sends through one named Ray actor, ``FipoTracker``, which owns a
``fipo_engine.tracking.Tracker`` (local spool + background sender to the control plane):

- actor workers (rank 0) collect K samples of the last micro-batch of each PPO phase (the most
  off-policy one, where FIPO's weights are not 1) and hand them to the tracker;
- the ``PPOTrainer`` process, which logs each global step, hands the step's metrics to the tracker,
  which writes them and then the buffered samples under that step number.

The tracker also says the run is alive: ``status("running")`` when the ``PPOTrainer`` starts and a
bare heartbeat (an empty events POST) every ``HEARTBEAT_S`` while the job lives, because one 32B step
takes longer than the control plane's 180 s heartbeat window. The run's terminal state comes from
Ray's job state (the control plane polls it when the heartbeats stop): the tracker actor dies with
the job, and the driver's final model save happens after the trainer returns.

Units differ from OpenRLHF's logs in three places, converted here: ``dynamic_filtering_pass_rate`` is
samples / prompts x 100 (we report kept groups / generated groups), evaluation ``pass1`` is the mean
*reward* (2·acc − 1 with the ±1 reward; we report accuracy), and ``policy_loss`` is taken from our
loss's own token-mean metric (``fipo:actor/pg_loss``) rather than OpenRLHF's per-micro-batch value.

Everything here except ``FipoTracker``/``tracker_handle`` is pure and tested on CPU.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from fipo_engine import token_channels
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
#: The per-token channels sent with each sample (catalog order): OpenRLHF computes no entropy for
#: the loss, and without ``log_ratio`` the samples page rebuilds it from logprob − old_logprob.
SAMPLE_CHANNELS = token_channels.names(exclude=("log_ratio", "entropy"))


def _number(value: Any) -> float | None:
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN -> None


def _run_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    raw = (os.environ if environ is None else environ).get("FIPO_CONFIG_JSON")
    return json.loads(raw) if raw else {}


def samples_per_prompt(environ: Mapping[str, str] | None = None) -> int:
    """``rollout.n`` of the run config (the recipe's 16 when unset)."""
    return int((_run_config(environ).get("rollout") or {}).get("n", 16))


def reward_scores(environ: Mapping[str, str] | None = None) -> tuple[float, float]:
    """(correct_score, incorrect_score) of the run config (the recipe's +1 / -1 when unset)."""
    reward = _run_config(environ).get("reward") or {}
    return float(reward.get("correct_score", 1.0)), float(reward.get("incorrect_score", -1.0))


def map_openrlhf_status(status: Mapping[str, Any], *, n: int | None = None) -> dict[str, float]:
    """One logged OpenRLHF step -> ``{catalog name: value}``; our loss's own metrics take precedence.

    ``n`` is samples per prompt (default: the run config's ``rollout.n``): OpenRLHF's
    ``dynamic_filtering_pass_rate`` is kept samples / prompts consumed x 100, so the fraction of
    groups kept is that / (100 n).
    """
    values: dict[str, float] = {}
    for ours, keys in OPENRLHF_METRICS.items():
        for key in keys:
            if key in status and (number := _number(status[key])) is not None:
                values[ours] = number
                break
    if "sampling/kept_group_fraction" in values:
        values["sampling/kept_group_fraction"] /= 100.0 * (n if n is not None else samples_per_prompt())
    for key, raw in status.items():
        name = key.removeprefix(LOSS_METRIC_PREFIX)
        if key.startswith(LOSS_METRIC_PREFIX) and is_known(name) and (number := _number(raw)) is not None:
            values[name] = number
    return values


def accuracy_from_reward(mean_reward: float, correct: float, incorrect: float) -> float:
    """The accuracy behind a mean of {correct, incorrect} rewards (OpenRLHF's eval ``pass1`` = mean reward)."""
    return (mean_reward - incorrect) / (correct - incorrect)


def map_openrlhf_eval(logs: Mapping[str, Any], *, k: int, correct: float = 1.0, incorrect: float = -1.0
                      ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """OpenRLHF 0.11.2 ``compute_eval_metrics`` logs -> (catalog metrics, one ``eval`` event per dataset).

    OpenRLHF's ``eval_<ds>_pass1`` is the mean reward and ``eval_<ds>_pass<k>`` the mean of per-prompt
    max rewards; with our rewards (``correct``/``incorrect``, ±1 in the recipe) they are turned back into
    accuracy (avg@k) and pass@k. With several datasets the catalog metrics are their unweighted mean.
    """
    per_ds: dict[str, dict[str, float]] = {}
    for key, raw in logs.items():
        number = _number(raw)
        if number is None or not key.startswith("eval_"):
            continue
        suffixes = ((f"_pass{k}", "pass_at_k"),) if k > 1 else ()
        for suffix, field_name in (*suffixes, ("_pass1", "pass_at_1"),
                                   ("_response_length_mean", "response_length_mean"),
                                   ("_truncated_rate", "truncation_rate")):
            ds = key[len("eval_"):-len(suffix)] if key.endswith(suffix) else ""
            if ds:
                if field_name.startswith("pass_at"):
                    number = accuracy_from_reward(number, correct, incorrect)
                per_ds.setdefault(ds, {})[field_name] = number
                break
    events = [{"benchmark": ds, "k": k, **fields} for ds, fields in sorted(per_ds.items()) if "pass_at_1" in fields]
    metrics: dict[str, float] = {}
    for field_name in ("pass_at_1", "pass_at_k", "response_length_mean", "truncation_rate"):
        found = [fields[field_name] for fields in per_ds.values() if field_name in fields]
        if found:
            metrics[f"eval/{field_name}"] = sum(found) / len(found)
    return metrics, events


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

    ``sequences`` [B, S]; ``action_mask`` [B, T] covers the last T positions of ``sequences`` (OpenRLHF
    0.11.2: T = S - 1, ``action_mask[j]`` marks token ``j + 1``); the loss tensors of ``output`` (a
    ``PolicyLossOutput``) are [B, T]. The prompt is every attended token before the first response
    token (not just the columns in front of the action mask, which is one token in 0.11.2).
    """
    t_len = action_mask.shape[1]
    offset = sequences.shape[1] - t_len
    from_loss = token_channels.loss_outputs()  # channel -> PolicyLossOutput attribute
    samples = []
    for i in range(min(k, sequences.shape[0])):
        mask = action_mask[i].bool()
        first = offset + (int(mask.int().argmax()) if bool(mask.any()) else t_len)
        prompt_ids = [int(t) for t, m in zip(sequences[i, :first].tolist(), attention_mask[i, :first].tolist(),
                                             strict=True) if m]
        response_ids = [int(t) for t, m in zip(sequences[i, -t_len:].tolist(), mask.tolist(), strict=True) if m]
        reward = _number(rewards[i]) if rewards is not None else None
        before_loss = {"logprob": log_probs[i], "old_logprob": old_log_probs[i], "advantage": advantages[i]}
        channels = {name: before_loss[name] if name in before_loss else getattr(output, from_loss[name])[i]
                    for name in SAMPLE_CHANNELS}
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
HEARTBEAT_S = 60.0  # well inside the control plane's 180 s window


class FipoTracker:
    """Ray actor (``num_cpus=0``) owning the run's ``Tracker``; methods run one at a time.

    On creation it reports ``running`` and starts a daemon thread that posts a bare heartbeat (an
    empty events batch) every ``heartbeat_s`` for as long as the actor lives, i.e. as long as the job.
    """

    def __init__(self, run_dir: str, server: str | None, run_id: str | None, token: str | None,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        import threading

        from fipo_engine.tracking import Tracker

        self.tracker = Tracker(run_dir, server=server or None, run_id=run_id, token=token)
        self.has_server = bool(server)
        self.pending: list[dict[str, Any]] = []
        self.heartbeats = 0
        self._stop = threading.Event()
        self.tracker.status("running", "OpenRLHF trainer started")
        if server:
            url = f"{server.rstrip('/')}/api/v1/runs/{run_id}/events"
            threading.Thread(target=self._beat, args=(url, token, heartbeat_s), name="fipo-heartbeat",
                             daemon=True).start()

    def _beat(self, url: str, token: str | None, every: float) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        while not self._stop.wait(every):
            try:
                httpx.post(url, content="[]", headers=headers, timeout=10.0)
                self.heartbeats += 1
            except httpx.HTTPError:  # the next beat (or the next event) tries again
                pass

    def eval(self, step: int, logs: dict[str, Any], k: int) -> int:
        """Forward one OpenRLHF evaluation (accuracy, not mean reward) as metrics and ``eval`` events."""
        correct, incorrect = reward_scores()
        metrics, events = map_openrlhf_eval(logs, k=k, correct=correct, incorrect=incorrect)
        seq = self.tracker.metric(step, metrics) if metrics else 0
        for event in events:
            seq = self.tracker.eval(step=step, **event)
        return seq

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

    def close(self, state: str | None = None, message: str = "") -> bool:
        """Stop the heartbeats, report ``state`` (if given) and flush the spool to the control plane."""
        self._stop.set()
        if state:
            self.tracker.status(state, message)
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
