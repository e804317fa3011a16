"""Graders by name: ``(response, problem) -> Grade``. One implementation for training and evaluation.

* ``math``: the recipe's verifier (docs/spec.md §2.1): the final ``\\boxed{}`` answer in the last 300
  characters (last box wins), compared with the ground truth by math-verify, so ``033`` equals ``33``,
  ``\\frac{1}{2}`` equals ``0.5`` and LaTeX forms are parsed. No extractable answer is wrong.
* ``reasoning_gym``: the generator's own ``score_answer(answer=..., entry=...)``; score >= 1 is correct.
* ``reasoning_gym_last_number``: the same, but with no box and no ``Answer:`` line the last number in
  the response is the answer: a 135M chat model states results in prose ("4 - 1 is 3.") and
  rarely boxes them, so the strict grader scores it 0 on tasks it mostly solves (``smollm2-arith``).
* ``exact``: normalised string equality (see ``extract.normalize_answer``).

Register another with ``@GRADERS.register("name")``; the reward config's ``name`` selects it. The
registry itself is declared in ``fipo_engine.registry`` (a leaf module) so that the run config can
check ``reward.name`` against it without importing this module at its own import.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fipo_engine.mathverify import parse_gold, verify_equal
from fipo_engine.registry import GRADERS
from fipo_engine.rewards.extract import (
    extract_last_number,
    extract_math_answer,
    extract_plain_answer,
    normalize_answer,
)

if TYPE_CHECKING:  # annotations only: at run time this module does not depend on them
    from fipo_engine.data.problem import Problem


@dataclass(frozen=True)
class Grade:
    """The verdict on one response: was it right, and which answer was read from it (``None``: none)."""

    correct: bool
    extracted: str | None


class Grader(Protocol):
    def __call__(self, response: str, problem: Problem) -> Grade: ...


def grader_names() -> list[str]:
    """Valid values of ``reward.name`` and of a benchmark's grader (the same registry the config checks)."""
    return GRADERS.names()


def get_grader(name: str) -> Grader:
    """The grader registered as ``name``; an unknown name fails listing the valid ones."""
    return GRADERS[name]


def grade(name: str, response: str, problem: Problem) -> Grade:
    return GRADERS[name](response, problem)


# ----------------------------------------------------------------------------------------------- math
_parse_gold = parse_gold  # (the name tests and benches used)


_INTEGER = re.compile(r"^-?\d+$")


def quick_equal(predicted: str, gold: str) -> bool | None:
    """The verdicts that need no math-verify: equal normalised strings, two different plain integers
    (the AIME case). None: math-verify has to decide."""
    pred_norm, gold_norm = normalize_answer(predicted), normalize_answer(gold)
    if pred_norm == gold_norm:
        return True
    if pred_norm is not None and gold_norm is not None and _INTEGER.match(pred_norm) and _INTEGER.match(gold_norm):
        return False
    return None


def math_equal(predicted: str, gold: str) -> bool:
    """Whether two answer strings are mathematically equal (math-verify; string fallback), in-process."""
    quick = quick_equal(predicted, gold)
    return quick if quick is not None else verify_equal(predicted, gold)


@GRADERS.register("math")
def grade_math(response: str, problem: Problem) -> Grade:
    """Recipe verifier: last box in the last 300 characters vs ``problem.answer`` via math-verify."""
    extracted = extract_math_answer(response)
    if extracted is None:
        return Grade(False, None)
    return Grade(math_equal(extracted, problem.answer), extracted)


def grade_math_many(responses: Sequence[str], problems: Sequence[Problem]) -> list[Grade]:
    """``grade_math`` over a batch, with math-verify in killable worker processes (``rewards.pool``):
    a pathological answer costs at most the pool's timeout and is graded wrong, in any thread."""
    from fipo_engine.rewards.pool import verify_many

    extracted = [extract_math_answer(r) for r in responses]
    verdicts: list[bool | None] = [
        False if e is None else quick_equal(e, p.answer) for e, p in zip(extracted, problems, strict=True)]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    for i, verdict in zip(todo, verify_many([(extracted[i], problems[i].answer) for i in todo]), strict=True):
        verdicts[i] = verdict
    return [Grade(bool(v), e) for v, e in zip(verdicts, extracted, strict=True)]


# -------------------------------------------------------------------------------------- reasoning_gym
@functools.lru_cache(maxsize=64)
def _gym_dataset(task: str, kwargs_json: str) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(task, size=1, seed=0, **json.loads(kwargs_json))


def _gym_task(problem: Problem) -> tuple[str, dict[str, Any], dict[str, Any]]:
    meta = problem.metadata
    entry = meta.get("entry")
    if not isinstance(entry, dict):
        raise ValueError(f"problem {problem.id!r}: reasoning_gym grading needs metadata['entry'] (the generator entry)")
    task = meta.get("task") or entry.get("metadata", {}).get("source_dataset")
    if not task:
        raise ValueError(f"problem {problem.id!r}: reasoning_gym grading needs metadata['task']")
    return task, dict(meta.get("task_kwargs") or {}), entry


@GRADERS.register("reasoning_gym")
def grade_reasoning_gym(response: str, problem: Problem) -> Grade:
    """The task's own ``score_answer``; answer = boxed content, else ``Answer:`` line, else last line."""
    return _gym_grade(extract_plain_answer(response), problem)


@GRADERS.register("reasoning_gym_last_number")
def grade_reasoning_gym_last_number(response: str, problem: Problem) -> Grade:
    """The task's own ``score_answer`` on the boxed content, else the ``Answer:`` line, else the last number."""
    return _gym_grade(extract_last_number(response), problem)


def _gym_grade(extracted: str | None, problem: Problem) -> Grade:
    """The task's own ``score_answer`` on an extracted answer; score >= 1 is correct, no answer is wrong."""
    if extracted is None:
        return Grade(False, None)
    task, kwargs, entry = _gym_task(problem)
    dataset = _gym_dataset(task, json.dumps(kwargs, sort_keys=True, default=str))
    score = dataset.score_answer(answer=extracted, entry=entry)
    return Grade(score is not None and float(score) >= 1.0, extracted)


# ---------------------------------------------------------------------------------------------- exact
@GRADERS.register("exact")
def grade_exact(response: str, problem: Problem) -> Grade:
    """Normalised string match of the extracted answer with ``problem.answer``."""
    extracted = extract_plain_answer(response)
    if extracted is None:
        return Grade(False, None)
    return Grade(normalize_answer(extracted) == normalize_answer(problem.answer), extracted)
