"""``chain_sum``: a built-in task on which a longer chain of thought pays (the ``cot-demo`` preset).

A problem is a sum of several single-digit numbers, ``3+5+7+2+9``. A tiny model that answers in
one go has to add all the terms inside one forward pass and is often wrong; a model that writes
the sum down line by line, folding the first two terms into one each time, only ever adds a
one-digit number to a running total and copies the rest of the line, which it learns to do well::

    3+5+7+2+9        (the prompt)
    8+7+2+9          (response line 1: 3+5 folded)
    15+2+9
    17+9
    26               (the last line is the answer; the ``exact`` grader reads it)

Every level of detail shares that format, so the grader never needs to know how the answer was
reached: a direct answer is the single line ``26``; a coarse solution folds 2-3 terms per line
(``15+2+9`` then ``26``). The reward is only whether the last line is right. Nothing rewards length.

With ``modulus`` set (``cot-demo`` uses 10) the answer is the sum mod m, the prompt says so
(``3+5+7+2+9 mod 10``), and a chain ends with one more line, ``6``, the last digit of its total.
That is what makes a chain worth writing for a tiny model: it can learn to estimate a sum in one
pass, which gets a one-line answer of a plain sum right fairly often, but a remainder cannot be
estimated, so one-line answers start near chance while copying a total's last digit is easy.

The supervised warm start (``trainer.sft_warmup_steps``) draws one solution per example: first
from ``solution_mix`` (every level of detail, so the model learns to write chains), and for the
last ``final_fraction`` of its steps from ``final_mix`` (mostly direct answers). The skills stay,
the preference turns short: when RL begins the policy mostly answers in one line and is often
wrong, and sometimes writes a chain, which is right more often. Responses grow because growing
pays. Problems and warm-start draws are seeded; nothing downloads.
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
    modulus: int = Field(0, ge=0, le=1000, description="0: the answer is the sum; m > 0: the answer is the sum mod m "
                         "(a chain keeps plain totals and reduces on its last line). A one-line answer cannot get "
                         "a remainder by averaging the terms, so direct answers stay near chance.")
    solution_mix: dict[str, float] = Field(
        default_factory=lambda: {"direct": 1.0, "coarse": 1.0, "full": 1.0},
        description="Warm-start solution detail weights while the skills are taught: direct (answer only), "
        "coarse (2-3 terms folded per line), full (one term per line).",
    )
    final_mix: dict[str, float] = Field(
        default_factory=lambda: {"direct": 0.8, "coarse": 0.1, "full": 0.1},
        description="Detail weights of the last final_fraction of the warm start: what the policy prefers "
        "when RL begins (mostly short answers).",
    )
    final_fraction: float = Field(0.2, ge=0.0, le=1.0, description="Share of warm-start steps that use final_mix.")

    @model_validator(mode="after")
    def _check(self) -> ChainSumTask:
        if self.min_terms > self.max_terms:
            raise ValueError("min_terms cannot exceed max_terms")
        if self.min_value > self.max_value:
            raise ValueError("min_value cannot exceed max_value")
        for name, mix in (("solution_mix", self.solution_mix), ("final_mix", self.final_mix)):
            unknown = set(mix) - set(DETAILS)
            if unknown:
                raise ValueError(f"{name}: unknown detail {sorted(unknown)}; valid: {', '.join(DETAILS)}")
            weights = list(mix.values())
            if any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"{name} weights must be finite, non-negative and not all zero")
        return self


def fold(terms: Sequence[int], sizes: Sequence[int]) -> list[str]:
    """The solution lines that fold ``sizes[i]`` further terms into the running total on line ``i``.

    Each line is the running total followed by the terms not yet added.

    >>> fold([3, 5, 7, 2, 9], [1, 1, 1, 1])
    ['8+7+2+9', '15+2+9', '17+9', '26']
    >>> fold([3, 5, 7, 2, 9], [2, 2])
    ['15+2+9', '26']
    """
    if sum(sizes) != len(terms) - 1 or any(s < 1 for s in sizes):
        raise ValueError(f"sizes {list(sizes)} must be positive and fold all {len(terms)} terms into one")
    total, used, lines = terms[0], 1, []
    for size in sizes:
        total += sum(terms[used: used + size])
        used += size
        lines.append("+".join(str(x) for x in [total, *terms[used:]]))
    return lines


def solution(terms: Sequence[int], detail: str, rng: np.random.Generator, modulus: int = 0) -> str:
    """One worked solution at ``detail`` (see ``DETAILS``); its last line is the answer.

    With a ``modulus`` the chain keeps plain running totals and reduces once, on a last line of its
    own (``26`` then ``6`` for mod 10); a direct answer is that reduced number alone.

    >>> solution([3, 5, 7, 2, 9], "full", np.random.default_rng(0), modulus=10)
    '8+7+2+9\\n15+2+9\\n17+9\\n26\\n6'
    >>> solution([3, 5, 7, 2, 9], "direct", np.random.default_rng(0), modulus=10)
    '6'
    """
    folds = len(terms) - 1
    if detail == "direct":
        return str(sum(terms) % modulus if modulus else sum(terms))
    if detail == "full":
        sizes = [1] * folds
    elif detail == "coarse":
        sizes = []
        while sum(sizes) < folds:
            sizes.append(min(int(rng.integers(2, 4)), folds - sum(sizes)))
    else:
        raise ValueError(f"unknown detail {detail!r}; valid: {', '.join(DETAILS)}")
    lines = fold(terms, sizes)
    if modulus:
        lines.append(str(sum(terms) % modulus))
    return "\n".join(lines)


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
            metadata={"terms": terms, "modulus": task.modulus, "solution_mix": dict(task.solution_mix),
                      "final_mix": dict(task.final_mix), "final_fraction": task.final_fraction},
        ))
    return problems


def warm_start_solution(problem: Problem, rng: np.random.Generator, progress: float = 0.0) -> str:
    """A supervised target for ``problem`` at ``progress`` (0..1) through the warm start.

    The detail is drawn from ``solution_mix`` (every level taught) until the last ``final_fraction``
    of the warm start, then from ``final_mix``: the skills stay, the preference turns to short answers.
    """
    meta = problem.metadata
    late = progress >= 1.0 - meta.get("final_fraction", 0.0)
    mix = meta["final_mix"] if late and "final_mix" in meta else meta["solution_mix"]
    details = list(mix)
    weights = np.asarray([mix[d] for d in details], dtype=np.float64)
    detail = details[int(rng.choice(len(details), p=weights / weights.sum()))]
    return solution(meta["terms"], detail, rng, meta.get("modulus", 0))
