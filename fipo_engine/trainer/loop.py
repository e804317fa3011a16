"""The native FIPO trainer: one loop that reads top to bottom (rollout, reward, advantage, loss, step).

How FIPO differs from the algorithms it builds on (docs/spec.md):
1. GRPO samples G responses per prompt and gives every token of a response the same advantage,
   the response's reward normalised within its group (mean and unbiased std), then takes PPO
   clipped steps (often with a KL penalty to a reference model).
2. DAPO keeps the group advantage and drops the KL term; it adds clip-higher (ε_high 0.28 >
   ε_low 0.2), a dual clip c = 10 for negative advantages, a token-mean loss, dynamic sampling
   (groups whose answers are all right or all wrong are dropped and more prompts are drawn) and a
   soft overlong penalty on the reward.
3. FIPO keeps all of DAPO and re-weights each token's advantage by an influence weight
   w_t = clip(exp(F_t), 1, 1.2), where F_t = Σ_{k≥t} γ^{k-t} log(π/π_old)_k is the discounted
   (half-life τ = 32 tokens) sum of the log-ratio *from this token onwards*: tokens whose future
   the current policy already favours more than the rollout policy get more credit. Tokens with a
   log-ratio above ln c are left out of the sums, and negative samples with ratio above a safety
   threshold get weight ≤ 1.
4. F is zero on-policy, so FIPO only acts when one rollout batch feeds several optimizer steps:
   old log-probs are recomputed once (π_old), then each mini-batch moves π away from π_old and the
   later mini-batches see non-trivial weights. Presets therefore use several mini-batches per step.

Each step is a sequence of plain functions (``trainer/phases.py``) over small objects
(``trainer/state.py``): ``collect_rollouts`` -> ``score`` -> ``filter_groups`` -> ``compute_advantages``
-> ``recompute_old_log_probs`` -> ``update_policy`` -> ``log_step`` -> ``maybe_eval`` -> ``maybe_checkpoint``.
A stop request is noticed at safe points between them, raised as ``StopRequested`` and caught in
one place, ``train``. Launch with ``fipo train cot-demo --out var/runs/cot`` (what to expect from
each demo, and how long it takes: docs/trainer.md).
"""

from __future__ import annotations

import time
from pathlib import Path

from fipo_engine.config import RunConfig
from fipo_engine.tracking import Tracker
from fipo_engine.trainer.checkpoint import rng_state
from fipo_engine.trainer.phases import (
    check_stop,
    collect_rollouts,
    compute_advantages,
    evaluate,
    filter_groups,
    log_step,
    maybe_checkpoint,
    maybe_eval,
    progress_bar,
    recompute_old_log_probs,
    record_stop,
    rollout_metrics,
    score,
    update_policy,
)
from fipo_engine.trainer.startup import finish_run, start_run
from fipo_engine.trainer.state import RolloutBatch, Run, StepMetrics, StopRequested, TrainResult
from fipo_engine.trainer.stop import StopRequest
from fipo_engine.trainer.warm_start import warm_start

__all__ = ["StopRequested", "TrainResult", "train", "train_step"]


def train(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, tracker: Tracker | None = None,
          progress: bool = True, stop: StopRequest | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (config.json, events.jsonl, checkpoints/); see the module docstring.

    ``stop`` (``trainer/stop.py``): when it is requested, the run stops at the next safe point with a
    checkpoint a ``resume`` continues from exactly, and returns with ``result.stopped`` set. A stop
    during generation abandons that step (model and optimizer are untouched until the update, and
    the step's prompts and RNG state are those of the checkpoint); a stop during the update finishes
    the step's remaining mini-batches first; evaluation is skipped. A stop during the supervised
    warm start writes nothing (a resume starts over, which is exact too).
    """
    run = start_run(cfg, Path(out_dir), resume=resume, tracker=tracker, progress=progress, stop=stop)
    t = cfg.trainer
    try:
        warm_start(run)
        if run.state.step == 0 and t.eval_every:  # the eval curve's first point (the recipe validates first)
            evaluate(run, 0)
            check_stop(run)
        run.bar = progress_bar(progress, t.total_steps, "fipo train", initial=run.state.step)
        while run.state.step < t.total_steps:
            check_stop(run)
            train_step(run)
    except StopRequested as stop_at:
        record_stop(run, stop_at)
    return finish_run(run)


def train_step(run: Run) -> None:
    """One RL step, phase by phase; raises ``StopRequested`` at its safe points (see ``train``)."""
    t, step = run.cfg.trainer, run.state.step + 1
    batch = RolloutBatch(start_rng=rng_state())  # what a checkpoint of the last finished step holds
    metrics, started = StepMetrics(), time.perf_counter()
    while batch.stop_reason is None:  # dynamic sampling draws generation batches until the batch is full
        generation = collect_rollouts(run, batch, metrics)
        filter_groups(run, batch, score(run, generation, metrics))
        check_stop(run, rng=batch.start_rng)  # nothing is trained yet: abandon the step
    batch.groups = batch.groups[: t.train_batch_size]  # truncate to the train batch (recipe)
    rollout_metrics(run, step, batch, metrics)

    view = None
    if batch.groups:
        policy_batch = compute_advantages(run, step, batch, metrics)
        recompute_old_log_probs(run, policy_batch, metrics)
        view = update_policy(run, step, policy_batch, metrics)

    run.state.step, run.state.data_position = step, run.stream.position
    log_step(run, step, batch, metrics, view, started)
    check_stop(run)  # the step is complete: checkpoint it, skip the evaluation
    maybe_eval(run, step)
    maybe_checkpoint(run, step)
