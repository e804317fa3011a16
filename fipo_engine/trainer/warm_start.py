"""The supervised warm start (``trainer.sft_warmup_steps``): teach a tiny model the answer format first.

A model built from scratch (the CPU demos) is never right, so every group would score the same and
RL would have nothing to learn from; a few supervised steps on the task's own targets fix that. It
has its own AdamW (the RL optimizer starts fresh), prompt stream and target RNG, so it leaves the RL
prompt order as it is.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fipo_engine.config import RunConfig
from fipo_engine.data import Problem, PromptStream
from fipo_engine.data.chain_sum import warm_start_solution
from fipo_engine.trainer.batch import pack, response_logprobs
from fipo_engine.trainer.phases import progress_bar
from fipo_engine.trainer.state import Run, StopRequested


def warm_start(run: Run) -> None:
    """Run the warm start unless it is off or already done; then log its last loss at step 0.

    A stop request ends it at the next step with ``StopRequested(during_warm_start=True)``.
    """
    t = run.cfg.trainer
    if not t.sft_warmup_steps or run.state.sft_done:
        return
    stream = PromptStream(run.train_problems, seed=t.seed + 1)
    optimizer = torch.optim.AdamW(run.model.parameters(), lr=t.sft_lr, weight_decay=0.0)
    targets_rng = np.random.default_rng([t.seed, 1])  # which worked solution each warm-start example gets
    bar = progress_bar(run.progress, t.sft_warmup_steps, "warm start")
    report_every = max(1, t.sft_warmup_steps // 10)  # a log line every tenth: the run page shows it live
    run.tracker.log(f"supervised warm start: {t.sft_warmup_steps} steps, then {t.total_steps} RL steps")
    loss = math.nan
    for done in range(t.sft_warmup_steps):
        if run.stopping():
            if bar is not None:
                bar.close()
            raise StopRequested(during_warm_start=True)
        problems = stream.take(t.micro_batch_size)
        loss = _supervised_step(run, optimizer, problems, targets_rng, done / t.sft_warmup_steps)
        if bar is not None:
            bar.update(1)
        if (done + 1) % report_every == 0:
            run.tracker.log(f"warm start {done + 1}/{t.sft_warmup_steps}: loss {loss:.3f}")
    if bar is not None:
        bar.close()
    run.state.sft_done = True
    run.tracker.metric(0, {"actor/sft_loss": loss})


def _supervised_step(run: Run, optimizer: torch.optim.Optimizer, problems: list[Problem],
                     targets_rng: np.random.Generator, progress: float) -> float:
    """One step of next-token loss on the targets of ``problems``; returns the loss."""
    tok, model = run.tok, run.model
    answers = tok([_target(run.cfg, p, targets_rng, progress) for p in problems], add_special_tokens=False)
    responses = [[*ids, tok.eos_token_id] for ids in answers["input_ids"]]
    packed = pack(run.encode(problems), responses, tok.pad_token_id)
    log_prob, _ = response_logprobs(model, packed)
    mask = packed.response_mask.to(log_prob.device)
    loss = -(log_prob * mask).sum() / mask.sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), run.cfg.trainer.grad_clip)
    optimizer.step()
    return float(loss.detach())


def _target(cfg: RunConfig, problem: Problem, rng: np.random.Generator, progress: float) -> str:
    """The supervised target: a worked solution where the task has them (``chain_sum``), else the answer."""
    if problem.source == "chain_sum":
        return warm_start_solution(problem, rng, progress)
    return f"\\boxed{{{problem.answer}}}" if cfg.reward.name == "math" else problem.answer
