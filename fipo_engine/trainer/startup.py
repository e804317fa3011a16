"""Starting and finishing a ``train`` call: everything the step loop needs, in the order that keeps runs exact.

The order of the setup matters: seeding comes before the model is built (its random init), and a
resumed run restores the RNG states of its checkpoint once its model is loaded, so the resumed
steps draw exactly what the stopped run would have drawn.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from fipo_engine.config import RunConfig
from fipo_engine.data import Problem, PromptStream, load_problems
from fipo_engine.models import load_hf_dir, load_policy, resolve_device
from fipo_engine.models.loader import Policy
from fipo_engine.rollout import SamplingParams, make_rollout
from fipo_engine.tracking import Tracker
from fipo_engine.trainer.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_optimizer_state,
    load_rng,
    load_trainer_state,
    set_rng_state,
)
from fipo_engine.trainer.state import Run, TrainResult
from fipo_engine.trainer.stop import StopRequest

log = logging.getLogger("fipo.trainer")


def start_run(cfg: RunConfig, out: Path, *, resume: bool, tracker: Tracker | None, progress: bool,
              stop: StopRequest | None) -> Run:
    """Data, model (fresh or from the newest checkpoint), optimizer, rollout backend; report ``running``."""
    out.mkdir(parents=True, exist_ok=True)
    own_tracker = tracker is None
    tracker = tracker or Tracker(out)
    t = cfg.trainer
    if cfg.algorithm.kl_coef > 0:
        raise ValueError("algorithm.kl_coef > 0 needs a reference model, which the native trainer does not keep "
                         "(the recipe uses 0)")
    if t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    _seed_everything(t.seed)
    device = resolve_device(t.device)
    train_problems, eval_problems = load_problems(cfg.data, t.seed)
    ckpt = latest_checkpoint(out / "checkpoints") if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", out / "checkpoints")
    policy, state = _policy_and_state(cfg, ckpt, train_problems, device)
    policy.model.train()
    (out / "config.json").write_text(cfg.to_json())
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
    if ckpt is not None:
        load_optimizer_state(ckpt, optimizer)
        set_rng_state(load_rng(ckpt))
    stream = PromptStream(train_problems, seed=t.seed, shuffle=cfg.data.shuffle, position=state.data_position)
    rollout = make_rollout(cfg.rollout, policy, seed=t.seed,
                           max_model_len=cfg.data.max_prompt_length + cfg.rollout.max_new_tokens)
    params = SamplingParams(n=cfg.rollout.n, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                            top_k=cfg.rollout.top_k, max_new_tokens=cfg.rollout.max_new_tokens)
    run = Run(cfg=cfg, out=out, tracker=tracker, own_tracker=own_tracker, stop=stop, progress=progress, device=device,
              policy=policy, optimizer=optimizer, rollout=rollout, params=params, stream=stream, train_problems=train_problems, eval_problems=eval_problems, state=state,
              saved_step=state.step if ckpt is not None else -1)
    if hasattr(rollout, "should_stop"):
        rollout.should_stop = run.stopping  # polled once per generated token
    run.eval_prompts = run.encode(eval_problems) if eval_problems else []
    tracker.status("running", f"step {state.step}/{t.total_steps}" + (f", resumed from {ckpt.name}" if ckpt else ""))
    return run


def finish_run(run: Run) -> TrainResult:
    """Close the progress bar (and the tracker, when ``train`` opened it); the result, with its final step."""
    if run.bar is not None:
        run.bar.close()
    run.result.final_step = run.state.step
    if run.own_tracker:
        run.tracker.close()
    return run.result


def _policy_and_state(cfg: RunConfig, ckpt: Path | None, train_problems: list[Problem],
                      device: torch.device) -> tuple[Policy, TrainerState]:
    """The checkpoint's model and trainer state, or a fresh model (its tokenizer built from the data)."""
    if ckpt is not None:
        policy = load_hf_dir(ckpt / "model", cfg.model.dtype)
        policy.model.to(device)
        return policy, load_trainer_state(ckpt)
    corpus = [str(p.prompt) + p.answer for p in train_problems[:2000]] + [cfg.data.prompt_suffix]
    return load_policy(cfg.model, corpus=corpus, seed=cfg.trainer.seed, device=device), TrainerState()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)

