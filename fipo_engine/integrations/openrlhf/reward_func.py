"""Reward function file for OpenRLHF's ``--reward.remote_url /path/to/reward_func.py``: our graders.

OpenRLHF 0.11.2 loads this file by path (``importlib.util.spec_from_file_location``) inside every
vLLM engine actor and calls ``reward_func(queries, prompts, labels)`` with one-element lists, in a
thread. ``queries`` are the decoded prompt + response (special tokens kept); ``labels`` come from
``--data.label_key`` (the DAPO parquet's ``reward_model`` dict, whose ``ground_truth`` is the answer,
or a plain string).

We return what OpenRLHF reads:
- ``rewards``: the recipe's +1 / -1 (``reward.correct_score`` / ``incorrect_score``). The overlong
  penalty is NOT added here: OpenRLHF adds it itself (``--reward.overlong_buffer_len``).
- ``scores``: accuracy in {0, 1}; dynamic filtering with range (0, 1) then keeps exactly the groups
  whose accuracy is neither all 0 nor all 1 (the recipe's ``acc`` metric).
- ``extra_logs``: ``accuracy``, logged per step by OpenRLHF and forwarded as ``accuracy/mean``.

The grader and scores come from the run config in ``$FIPO_CONFIG_JSON`` (``reward`` section).
A grader exception scores the response as wrong rather than losing the sample; the ``math`` grader runs
math-verify in killable worker processes with a timeout (``fipo_engine.rewards.pool``).
"""

from __future__ import annotations

import contextlib
import json
import os
from functools import lru_cache
from typing import Any

import torch

from fipo_engine.config import RewardConfig
from fipo_engine.data.problem import Problem
from fipo_engine.rewards import get_grader
from fipo_engine.rewards.graders import grade_math_many


@lru_cache(maxsize=1)
def reward_config(raw: str | None = None) -> RewardConfig:
    """The ``reward`` section of the run config (recipe defaults when the env var is absent)."""
    raw = raw if raw is not None else os.environ.get("FIPO_CONFIG_JSON")
    section = (json.loads(raw).get("reward") if raw else None) or {}
    return RewardConfig(**section)


def answer_of(label: Any) -> str:
    """The ground truth from a label: DAPO ``{"ground_truth": ...}``, a JSON string of that, or plain text."""
    if isinstance(label, str) and label.startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            label = json.loads(label)
    if isinstance(label, dict):
        label = label.get("ground_truth", label.get("answer", ""))
    return "" if label is None else str(label)


def response_of(query: str, prompt: str) -> str:
    """The response part of OpenRLHF's decoded ``query`` (= prompt + response)."""
    return query[len(prompt):] if prompt and query.startswith(prompt) else query


def grade_one(query: str, prompt: str, label: Any, cfg: RewardConfig) -> tuple[float, float]:
    """(reward, accuracy) of one sample."""
    return grade_all([query], [prompt], [label], cfg)[0]


def grade_all(queries: list[str], prompts: list[str], labels: list[Any], cfg: RewardConfig
              ) -> list[tuple[float, float]]:
    """(reward, accuracy) per sample. The ``math`` grader runs math-verify in killable worker
    processes: OpenRLHF calls us in a thread, where math-verify has no timeout and a pathological
    answer would hang the vLLM engine (``fipo_engine.rewards.pool``)."""
    problems = [Problem(id="openrlhf", prompt=p, answer=answer_of(label), source="openrlhf")
                for p, label in zip(prompts, labels, strict=True)]
    responses = [response_of(q, p) for q, p in zip(queries, prompts, strict=True)]
    try:
        if cfg.name == "math":
            verdicts = [g.correct for g in grade_math_many(responses, problems)]
        else:
            verdicts = [_safe(cfg.name, r, problem) for r, problem in zip(responses, problems, strict=True)]
    except Exception:  # a grader failure must not drop the samples (OpenRLHF would log and lose them)
        verdicts = [False] * len(problems)
    return [((cfg.correct_score if c else cfg.incorrect_score), float(c)) for c in verdicts]


def _safe(name: str, response: str, problem: Problem) -> bool:
    try:
        return get_grader(name)(response, problem).correct
    except Exception:
        return False


def reward_func(queries: list[str], prompts: list[str], labels: list[Any], **_: Any) -> dict[str, Any]:
    """OpenRLHF's reward-function entry point (see module docstring)."""
    cfg = reward_config()
    graded = grade_all(queries, prompts, labels, cfg)
    rewards = torch.tensor([r for r, _ in graded], dtype=torch.float32)
    accuracy = torch.tensor([a for _, a in graded], dtype=torch.float32)
    return {"rewards": rewards, "scores": accuracy, "extra_logs": {"accuracy": accuracy}}
