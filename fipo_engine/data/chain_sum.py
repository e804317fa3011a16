"""``chain_sum``: a built-in task on which a longer chain of thought pays (the ``cot-demo`` preset).

A problem is a sum of several single-digit numbers, ``3+5+7+2+9``. A tiny model that answers in
one go has to add all the terms inside one forward pass and is mostly wrong; a model that writes
the sum down line by line, folding the first two terms into one each time, only ever adds a
one-digit number to a running total and copies the rest of the line, which it does well::

    3+5+7+2+9        (the prompt)
    8+7+2+9          (response line 1: 3+5 folded)
    15+2+9
    17+9
    26               (the last line is the answer; the ``exact`` grader reads it)

Every level of detail shares that format, so the grader never needs to know how the answer was
reached: a direct answer is the single line ``26``; a coarse solution folds several terms per line
(``15+2+9`` then ``26``). The reward is only whether the last line is right. Nothing rewards length.

The supervised warm start (``trainer.sft_warmup_steps``) samples one solution per problem from
``solution_mix``: mostly direct answers, some coarse, a few full chains. After it the policy is
mostly short and often wrong; RL finds that the long chains are right more often, and responses
grow because growing pays. Problems and the warm-start draws are seeded; nothing downloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fipo_engine.data.problem import Problem

DETAILS = ("direct", "coarse", "full")


class ChainSumTask(BaseModel):
    """``data.task_kwargs`` of the ``chain_sum`` source (validated when problems are generated)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_terms: int = Field(4, ge=2, le=20, description="Fewest terms in a sum.")
    max_terms: int = Field(7, ge=2, le=20, description="Most terms in a sum.")
    min_value: int = Field(1, ge=0, le=999, description="Smallest term.")
    max_value: int = Field(9, ge=0, le=999, description="Largest term (terms are uniform in min_value..max_value).")
    modulus: int = Field(0, ge=0, le=1000, description="0: plain sums; m > 0: every running total is taken mod m "
                         "(the answer is the sum mod m), which a one-line answer cannot get by averaging the terms.")
    solution_mix: dict[str, float] = Field(
        default_factory=lambda: {"direct": 0.6, "coarse": 0.25, "full": 0.15},
        description="Warm-start solution detail weights: direct (answer only), coarse (2-3 terms folded "
        "per line), full (one term per line).",
    )

    @model_validator(mode="after")
    def _check(self) -> ChainSumTask:
        if self.min_terms > self.max_terms:
            raise ValueError("min_terms cannot exceed max_terms")
        if self.min_value > self.max_value:
            raise ValueError("min_value cannot exceed max_value")
        unknown = set(self.solution_mix) - set(DETAILS)
        if unknown:
            raise ValueError(f"solution_mix: unknown detail {sorted(unknown)}; valid: {', '.join(DETAILS)}")
        weights = list(self.solution_mix.values())
        if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("solution_mix weights must be finite, non-negative and not all zero")
        return self


def fold(terms: Sequence[int], sizes: Sequence[int], modulus: int = 0) -> list[str]:
    """The solution lines that fold ``sizes[i]`` further terms into the running total on line ``i``.

    >>> fold([3, 5, 7, 2, 9], [1, 1, 1, 1])
    ['8+7+2+9', '15+2+9', '17+9', '26']
    >>> fold([3, 5, 7, 2, 9], [4])
    ['26']
    """
    if sum(sizes) != len(terms) - 1 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes {list(sizes)} must be positive and fold all {len(terms)} terms into one")
    total, used, lines = terms[0], 1, []
    for size in sizes:
        total += sum(terms[used: used + size])
        if modulus:
            total %= modulus
        used += size
        lines.append("+".join(str(x) for x in [total, *terms[used:]]))
    return lines


def solution(terms: Sequence[int], detail: str, rng: np.random.Generator, modulus: int = 0) -> str:
    """One worked solution of ``sum(terms)`` at ``detail`` (see ``DETAILS``); the last line is the answer."""
    folds = len(terms) - 1
    if detail == "direct":
        sizes = [folds]
    elif detail == "full":
        sizes = [1] * folds
    elif detail == "coarse":
        sizes = []
        while sum(sizes) < folds:
            sizes.append(min(int(rng.integers(2, 4)), folds - sum(sizes)))
    else:
        raise ValueError(f"unknown detail {detail!r}; valid: {', '.join(DETAILS)}")
    return "\n".join(fold(terms, sizes, modulus))


def generate(task_kwargs: Mapping[str, Any], size: int, seed: int) -> list[Problem]:
    """``size`` seeded problems; ``metadata`` keeps the terms and the warm-start mix."""
    task = ChainSumTask.model_validate(dict(task_kwargs))
    rng = np.random.default_rng([seed, 0xC0FFEE])
    problems = []
    for i in range(size):
        count = int(rng.integers(task.min_terms, task.max_terms + 1))
        terms = [int(x) for x in rng.integers(task.min_value, task.max_value + 1, size=count)]
        text, answer = "+".join(map(str, terms)), sum(terms)
        if task.modulus:
            text, answer = f"{text} mod {task.modulus}", answer % task.modulus
        problems.append(Problem(
            id=f"chain_sum-{seed}-{i}", prompt=text, answer=str(answer), source="chain_sum",
            metadata={"terms": terms, "modulus": task.modulus, "solution_mix": dict(task.solution_mix)},
        ))
    return problems


def warm_start_solution(problem: Problem, rng: np.random.Generator) -> str:
    """A supervised target for ``problem``: a solution whose detail is drawn from its ``solution_mix``."""
    mix = problem.metadata["solution_mix"]
    details = list(mix)
    weights = np.asarray([mix[d] for d in details], dtype=np.float64)
    detail = details[int(rng.choice(len(details), p=weights / weights.sum()))]
    return solution(problem.metadata["terms"], detail, rng, problem.metadata.get("modulus", 0))
