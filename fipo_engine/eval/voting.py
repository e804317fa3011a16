"""cons@k votes on mathematically equivalent answers, not on strings.

Why: a model that answers ``1/3``, ``\\frac{1}{3}`` and ``0.3333...`` has said one thing three
times; a string vote would split it into three votes and may elect a minority answer. Answers are
grouped into equivalence classes, each answer joining the first class whose representative it
equals, and the largest class wins (ties go to the class that reached the top count first, in
sample order, as ``stats.majority_vote`` does).

Equality is the grader's: for ``math``, math-verify (``rewards.graders.math_equal``: ``1/3`` =
``\\frac{1}{3}``, ``0.5`` = ``1/2``; six-decimal rounding) plus one rule for written-out repeating
decimals: a decimal with d digits followed by an ellipsis (``0.3333...``, ``0.33\\ldots``) equals
a value within 10^-d of it. Other graders compare normalised strings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from fipo_engine.rewards import normalize_answer

_ELLIPSIS = re.compile(r"^\s*([+-]?\d*\.(\d+))\s*(?:\.\.\.|\\ldots|\\dots|\\cdots|…)\s*$")


# Longer extracted answers are prose or garbage, not values: they vote by string only (a math-verify
# parse of such text can take seconds, and a vote compares every answer with every class).
MAX_MATH_VOTE_CHARS = 100
_INTEGER = re.compile(r"^-?\d+$")


def _parsed(answer: str) -> tuple:
    """math-verify's parse of an answer, cached per process (``fipo_engine.mathverify.parse_gold``)."""
    from fipo_engine.mathverify import parse_gold

    try:
        return parse_gold(answer)
    except Exception:  # math-verify raises on pathological input or timeouts: no value then
        return ()


@functools.lru_cache(maxsize=4096)
def _value(answer: str) -> float | None:
    """A plain number's value (``0.25``, ``1/3``, ``\\frac{1}{3}``), or None."""
    try:
        parsed = _parsed(answer)
        if not parsed or not getattr(parsed[0], "is_number", False):
            return None
        return float(parsed[0].evalf())
    except Exception:  # math-verify / sympy raise on odd input: not a number then
        return None


def _ellipsis_match(a: str, b: str) -> bool:
    """``0.3333...`` vs ``1/3``: equal when within the precision the decimal was written to."""
    for dec, other in ((a, b), (b, a)):
        match = _ELLIPSIS.match(dec)
        if match is None:
            continue
        value = _value(other) if not _ELLIPSIS.match(other) else float(_ELLIPSIS.match(other).group(1))
        if value is not None and abs(float(match.group(1)) - value) <= 10 ** -len(match.group(2)):
            return True
    return False


def math_equivalent(a: str, b: str) -> bool:
    """Whether two extracted answers are one vote under the math grader: math-verify on cached
    parses (each distinct answer is parsed once per process, not once per comparison)."""
    from math_verify import verify

    from fipo_engine.mathverify import _timeout

    na, nb = normalize_answer(a), normalize_answer(b)
    if na == nb:
        return True
    if na and nb and _INTEGER.match(na) and _INTEGER.match(nb):
        return False  # two different plain integers (the AIME case): no parse needed
    if len(a) > MAX_MATH_VOTE_CHARS or len(b) > MAX_MATH_VOTE_CHARS:
        return False
    if _ellipsis_match(a, b):
        return True
    pa, pb = _parsed(a), _parsed(b)
    if not pa or not pb:
        return False
    try:
        return bool(verify(list(pa), list(pb), timeout_seconds=_timeout()))
    except Exception:  # as the grader: a failed comparison is "not equal"
        return False


def string_equivalent(a: str, b: str) -> bool:
    return normalize_answer(a) == normalize_answer(b)


def equivalence_for(grader: str) -> Callable[[str, str], bool]:
    """The answer equality a grader implies (math: math-verify; others: normalised strings)."""
    return math_equivalent if grader == "math" else string_equivalent


def answer_classes(answers: Sequence[str | None], equivalent: Callable[[str, str], bool]) -> list[int | None]:
    """For each answer the index of its equivalence class (None: no answer), classes numbered in
    order of first appearance. Each answer is compared with every class's first member."""
    reps: list[str] = []
    keys: dict[str | None, int] = {}  # normalised string -> class (equal strings need no math)
    out: list[int | None] = []
    for answer in answers:
        if answer is None:
            out.append(None)
            continue
        key = normalize_answer(answer)
        if key in keys:
            out.append(keys[key])
            continue
        cls = next((i for i, rep in enumerate(reps) if equivalent(answer, rep)), None)
        if cls is None:
            cls = len(reps)
            reps.append(answer)
        keys[key] = cls
        out.append(cls)
    return out


def consensus(answers: Sequence[str | None], correct: Sequence[bool], grader: str) -> tuple[str | None, bool, int]:
    """(the winning class's normalised representative, whether it is correct, its vote count).

    The class is correct when a sample in it was graded correct (all members are equal answers).
    """
    classes = answer_classes(answers, equivalence_for(grader))
    counts: dict[int, int] = {}
    best: int | None = None
    for cls in classes:
        if cls is None:
            continue
        counts[cls] = counts.get(cls, 0) + 1
        if best is None or counts[cls] > counts[best]:
            best = cls
    if best is None:
        return None, False, 0
    first = next(i for i, cls in enumerate(classes) if cls == best)
    ok = any(c for cls, c in zip(classes, correct, strict=True) if cls == best)
    return normalize_answer(answers[first]), ok, counts[best]
