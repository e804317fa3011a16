"""Rewards: graders by name (math, reasoning_gym, exact), the overlong penalty and batch scoring.

The same graders serve the trainer's rewards and ``fipo eval`` (one implementation).
"""

from fipo_engine.rewards.extract import (
    extract_math_answer,
    extract_plain_answer,
    last_boxed,
    normalize_answer,
)
from fipo_engine.rewards.graders import GRADERS, Grade, get_grader, grade, grader_names, math_equal
from fipo_engine.rewards.scoring import RewardBatch, overlong_penalty, score_responses

__all__ = [
    "GRADERS",
    "Grade",
    "RewardBatch",
    "extract_math_answer",
    "extract_plain_answer",
    "get_grader",
    "grade",
    "grader_names",
    "last_boxed",
    "math_equal",
    "normalize_answer",
    "overlong_penalty",
    "score_responses",
]
