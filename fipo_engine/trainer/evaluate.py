"""In-training evaluation on the held-out set: Pass@1 as avg@k (docs/spec.md §9).

Sampling runs under a forked RNG seeded by (seed, step), so evaluating (or not, or more often)
never changes the training trajectory, and a resumed run evaluates exactly like a straight one.
"""

from __future__ import annotations

import numpy as np
import torch

from fipo_engine.config import RunConfig
from fipo_engine.data.problem import Problem
from fipo_engine.eval.stats import bootstrap_ci, pass_at_k
from fipo_engine.eval.voting import consensus
from fipo_engine.rewards import score_responses
from fipo_engine.rollout.base import RolloutBackend, SamplingParams


def run_eval(cfg: RunConfig, rollout: RolloutBackend, tokenizer: object, problems: list[Problem],
             prompt_ids: list[list[int]], step: int, device: torch.device) -> dict[str, float]:
    """Sample ``eval_k`` responses per problem and return the ``eval/*`` metrics plus a CI."""
    t, k = cfg.trainer, cfg.trainer.eval_k
    params = SamplingParams(n=k, temperature=t.eval_temperature, top_p=t.eval_top_p, top_k=cfg.rollout.top_k,
                            max_new_tokens=cfg.rollout.max_new_tokens)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(t.seed * 1_000_003 + step)
        gens = rollout.generate(prompt_ids, params)
    texts = tokenizer.batch_decode([g.response_ids for g in gens], skip_special_tokens=True)
    lengths = [len(g.response_ids) for g in gens]
    rewards = score_responses(cfg.reward, [problems[g.prompt_index] for g in gens], texts, lengths,
                              cfg.rollout.max_new_tokens)
    correct = np.asarray(rewards.correct).reshape(len(problems), k)
    extracted = list(rewards.extracted)
    per_problem = correct.mean(1)
    low, high = bootstrap_ci(per_problem.tolist(), seed=step)
    return {
        "eval/pass_at_1": float(per_problem.mean()),
        "eval/pass_at_k": float(np.mean([pass_at_k(k, int(c), k) for c in correct.sum(1)])),
        # votes on equivalent answers, as `fipo eval` counts them (fipo_engine.eval.voting)
        "eval/cons_at_k": float(np.mean([consensus(extracted[i * k:(i + 1) * k], correct[i].tolist(),
                                                   cfg.reward.name)[1] for i in range(len(problems))])),
        "eval/response_length_mean": float(np.mean(lengths)),
        "eval/truncation_rate": float(np.mean([g.truncated for g in gens])),
        "pass_at_1_ci": [low, high],
    }
