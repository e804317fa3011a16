"""Graders, extraction, overlong penalty and batch scoring (the recipe's reward, docs/spec.md §2.1)."""

from __future__ import annotations

import pytest

from fipo_engine.config import OverlongBufferConfig, RewardConfig
from fipo_engine.data.problem import Problem
from fipo_engine.registry import RegistryError
from fipo_engine.rewards import (
    extract_math_answer,
    get_grader,
    grade,
    grader_names,
    last_boxed,
    normalize_answer,
    overlong_penalty,
    score_responses,
)


def _p(answer: str, **meta) -> Problem:
    return Problem(id="p", prompt="q", answer=answer, source="test", metadata=meta)


# ----------------------------------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"nested \boxed{\sqrt{\frac{a}{b}}} end", r"\sqrt{\frac{a}{b}}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5 $", "5"),
        (r"\boxed{ 12 }", "12"),
        (r"cut off \boxed{1} and \boxed{2", "1"),  # the unclosed last box is skipped
        ("no box at all 42", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


def test_extract_inspects_only_the_tail() -> None:
    early = r"\boxed{7}" + " filler" * 100
    assert extract_math_answer(early) is None
    assert extract_math_answer(early, tail_chars=0) == "7"


def test_extract_answer_line_fallback_and_box_priority() -> None:
    assert extract_math_answer("work...\nAnswer: 204") == "204"
    assert extract_math_answer("Answer: $17$.") == "17"
    assert extract_math_answer("Answer: 3\n\\boxed{4}") == "4"


@pytest.mark.parametrize(
    ("raw", "norm"),
    [("033", "33"), ("-007", "-7"), ("0.50", "0.5"), ("2.0", "2"), (".5", "0.5"), (r"\dfrac{1}{2}", r"\frac{1}{2}"),
     (r"$ 3 $", "3"), ("Yes.", "yes"), (r"\left(1, 2\right)", "(1,2)"), (r"\text{ No }", "no"), (None, None)],
)
def test_normalize_answer(raw: str | None, norm: str | None) -> None:
    assert normalize_answer(raw) == norm


# ----------------------------------------------------------------------------------------- math grader
@pytest.mark.parametrize(
    ("response", "gold", "correct", "extracted"),
    [
        (r"The answer is \boxed{33}.", "33", True, "33"),
        (r"The answer is \boxed{033}.", "33", True, "033"),  # integers compared as numbers
        (r"\boxed{33}", "033", True, "33"),
        (r"\boxed{34}", "33", False, "34"),
        (r"\boxed{\frac{1}{2}}", "0.5", True, r"\frac{1}{2}"),
        (r"\boxed{0.5}", r"\frac{1}{2}", True, "0.5"),
        (r"\boxed{\dfrac{3}{4}}", r"\frac34", True, r"\dfrac{3}{4}"),
        (r"\boxed{\frac{2}{3}}", "0.5", False, r"\frac{2}{3}"),
        (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True, r"2\sqrt{2}"),
        (r"\boxed{\{1,2\}}", r"\{2,1\}", True, r"\{1,2\}"),
        (r"I think \boxed{5} but actually \boxed{6}", "6", True, "6"),  # last box wins
        (r"I think \boxed{6} but actually \boxed{5}", "6", False, "5"),
        ("The answer is 6", "6", False, None),  # no box, no Answer: line -> wrong
        ("", "6", False, None),
        (r"\boxed{}", "6", False, None),
    ],
)
def test_math_grader(response: str, gold: str, correct: bool, extracted: str | None) -> None:
    verdict = grade("math", response, _p(gold))
    assert verdict.correct is correct
    assert verdict.extracted == extracted


# ------------------------------------------------------------------------------ other graders, registry
def test_exact_grader() -> None:
    assert grade("exact", "blah\nYES", _p("yes")).correct
    assert grade("exact", r"\boxed{ 007 }", _p("7")).correct
    assert not grade("exact", "no", _p("yes")).correct
    assert grade("exact", "   ", _p("yes")).extracted is None


def test_reasoning_gym_grader_uses_the_task_scorer() -> None:
    import reasoning_gym

    entry = reasoning_gym.create_dataset("basic_arithmetic", size=1, seed=3)[0]
    problem = _p(entry["answer"], task="basic_arithmetic", entry=entry)
    assert grade("reasoning_gym", f"work\n{entry['answer']}", problem).correct
    assert grade("reasoning_gym", rf"\boxed{{{entry['answer']}}}", problem).correct
    wrong = str(int(entry["answer"]) + 1)
    assert not grade("reasoning_gym", wrong, problem).correct
    # the task name may also come from the entry's own metadata
    assert grade("reasoning_gym", entry["answer"], _p(entry["answer"], entry=entry)).correct
    with pytest.raises(ValueError, match="entry"):
        grade("reasoning_gym", "1", _p("1"))


def test_last_number_grader_reads_prose_answers_and_prefers_a_box() -> None:
    import reasoning_gym

    entry = reasoning_gym.create_dataset("basic_arithmetic", size=1, seed=3)[0]
    gold, problem = entry["answer"], _p(entry["answer"], task="basic_arithmetic", entry=entry)
    wrong = str(int(gold) + 1)
    assert grade("reasoning_gym_last_number", f"The result is {gold}.", problem).correct
    assert not grade("reasoning_gym", f"The result is {gold}.", problem).correct  # the strict grader reads the line
    assert grade("reasoning_gym_last_number", f"It is {wrong}, no: {gold}", problem).extracted == gold
    assert not grade("reasoning_gym_last_number", f"{gold} plus 1 makes {wrong}.", problem).correct
    assert grade("reasoning_gym_last_number", rf"\boxed{{{gold}}} (not {wrong})", problem).correct  # a box wins
    assert grade("reasoning_gym_last_number", f"Answer: {gold}\nchecked with 2 steps", problem).correct
    assert grade("reasoning_gym_last_number", "no digits here", problem).extracted is None
    assert grade("reasoning_gym_last_number", "in all 1,234 legs", _p("1234", task="basic_arithmetic",
                                                                        entry={**entry, "answer": "1234"})
                 ).extracted == "1234"


def test_registry_names_and_unknown() -> None:
    assert {"math", "reasoning_gym", "reasoning_gym_last_number", "exact"} <= set(grader_names())
    with pytest.raises(RegistryError, match=r"valid names: .*math"):
        get_grader("nope")


# ------------------------------------------------------------------------------------ overlong penalty
@pytest.mark.parametrize(
    ("length", "expected"),
    [(0, 0.0), (16384, 0.0), (16385, -1 / 4096), (18432, -0.5), (20480, -1.0), (22528, -1.5)],
)
def test_overlong_penalty_recipe_values(length: int, expected: float) -> None:
    assert overlong_penalty(length, 20480, 4096, 1.0) == pytest.approx(expected)


def test_overlong_penalty_factor_scales() -> None:
    assert overlong_penalty(20480, 20480, 4096, 0.5) == pytest.approx(-0.5)


# ------------------------------------------------------------------------------------- batch scoring
def test_score_responses_with_and_without_penalty() -> None:
    problems = [_p("4"), _p("4"), _p("4")]
    responses = [r"\boxed{4}", r"\boxed{5}", r"\boxed{4}"]
    lengths = [10, 10, 32]
    on = RewardConfig(overlong_buffer=OverlongBufferConfig(enable=True, length=8, penalty_factor=1.0))
    batch = score_responses(on, problems, responses, lengths, max_new_tokens=32)
    assert batch.correct == [True, False, True]
    assert batch.extracted == ["4", "5", "4"]
    assert batch.overlong_penalty == [0.0, 0.0, pytest.approx(-1.0)]
    assert batch.scores == [1.0, -1.0, pytest.approx(0.0)]
    off = RewardConfig(correct_score=1.0, incorrect_score=0.0,
                       overlong_buffer=OverlongBufferConfig(enable=False))
    batch = score_responses(off, problems, responses, lengths, max_new_tokens=32)
    assert batch.scores == [1.0, 0.0, 1.0]
    assert batch.overlong_penalty == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="same length"):
        score_responses(off, problems, responses[:2], lengths, max_new_tokens=32)
