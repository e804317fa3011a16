"""Batch scoring for training: grade, map to the recipe's +1/-1, add the DAPO overlong penalty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fipo_engine.rewards.graders import get_grader, grade_math_many

if TYPE_CHECKING:  # annotations only: at run time this module does not depend on them
    from fipo_engine.config import RewardConfig
    from fipo_engine.data.problem import Problem


def overlong_penalty(length: int, max_len: int, buffer_len: int, factor: float) -> float:
    """DAPO soft overlong punishment (docs/spec.md §2.1): ``min(-(len - (Lmax - Lbuf)) / Lbuf * factor, 0)``.

    0 up to ``max_len - buffer_len`` tokens, then linear down to ``-factor`` at ``max_len``.
    """
    if buffer_len <= 0:
        raise ValueError("buffer_len must be positive")
    expected = max_len - buffer_len
    return min(-(length - expected) / buffer_len * factor, 0.0)


@dataclass(frozen=True)
class RewardBatch:
    """Per-response results, all lists aligned with the input responses."""

    scores: list[float]             # correct/incorrect score + overlong penalty: the sequence reward
    correct: list[bool]             # the unpenalised correctness (the recipe's `acc`)
    extracted: list[str | None]     # the answer read from each response (None: nothing extractable)
    overlong_penalty: list[float]   # the penalty part of each score (0.0 when disabled)


def score_responses(
    cfg: RewardConfig,
    problems: list[Problem],
    responses: list[str],
    response_lengths: list[int],
    max_new_tokens: int,
) -> RewardBatch:
    """Score one response per entry of ``problems`` (repeat a problem for each of its samples).

    ``response_lengths`` are valid response tokens (the overlong penalty's ``len``) and
    ``max_new_tokens`` is Lmax.
    """
    if not len(problems) == len(responses) == len(response_lengths):
        raise ValueError(
            f"problems ({len(problems)}), responses ({len(responses)}) and response_lengths "
            f"({len(response_lengths)}) must have the same length"
        )
    grader = get_grader(cfg.name)
    # math: one batch, math-verify in killable worker processes (a hang costs the timeout, not the run)
    verdicts = grade_math_many(responses, problems) if cfg.name == "math" else None
    buf = cfg.overlong_buffer
    scores, correct, extracted, penalties = [], [], [], []
    for i, (problem, response, length) in enumerate(zip(problems, responses, response_lengths, strict=True)):
        verdict = verdicts[i] if verdicts is not None else grader(response, problem)
        penalty = (
            overlong_penalty(length, max_new_tokens, buf.length, buf.penalty_factor) if buf.enable else 0.0
        )
        base = cfg.correct_score if verdict.correct else cfg.incorrect_score
        scores.append(base + penalty)
        correct.append(verdict.correct)
        extracted.append(verdict.extracted)
        penalties.append(penalty)
    return RewardBatch(scores=scores, correct=correct, extracted=extracted, overlong_penalty=penalties)
