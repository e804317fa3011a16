"""cons@k votes on equivalence classes of answers; the paired bootstrap of a Pass@1 difference;
benchmark hashing and the built-in task benchmarks."""

from __future__ import annotations

import pytest

from fipo_engine.data.problem import Problem
from fipo_engine.eval import Sample, evaluate
from fipo_engine.eval.benchmarks import TASK_BENCHMARKS, benchmark_names, problems_sha256
from fipo_engine.eval.stats import paired_bootstrap_diff
from fipo_engine.eval.voting import answer_classes, consensus, equivalence_for


def test_equivalent_answers_are_one_vote() -> None:
    math = equivalence_for("math")
    assert answer_classes(["1/3", "\\frac{1}{3}", "0.3333...", "2", "2", None, "0.5", "1/2"], math) == \
        [0, 0, 0, 1, 1, None, 2, 2]
    # 0.3333 without an ellipsis is a different number to the grader (six-decimal rounding)
    assert answer_classes(["1/3", "0.3333"], math) == [0, 1]
    # three forms of 1/3 outvote two 2s; a string vote would elect 2
    winner, right, votes = consensus(["2", "1/3", "\\frac{1}{3}", "0.3333...", "2"],
                                     [False, True, True, False, False], "math")
    assert (winner, right, votes) == ("1/3", True, 3)
    assert consensus(["2", "1/3", "\\frac{1}{3}", "0.3333...", "2"], [False, True, True, False, False],
                     "exact")[:2] == ("2", False)
    assert consensus([None, None], [False, False], "math") == (None, False, 0)


def test_cons_at_k_in_evaluate_uses_the_classes() -> None:
    problem = Problem(id="p", prompt="x", answer="1/3", source="t")
    texts = ["\\boxed{2}", "\\boxed{1/3}", "\\boxed{\\frac{1}{3}}", "\\boxed{0.3333...}", "\\boxed{2}"]
    result = evaluate("b", [problem], {"p": [Sample(t) for t in texts]}, grader="math")
    assert result.cons_at_k == 1.0 and result.problems[0].correct == 2  # 0.3333... is not graded right
    assert result.problems[0].majority == "1/3"


def test_paired_bootstrap_diff() -> None:
    a = [0.0, 0.5, 1.0, 0.25] * 10
    b = [x + 0.25 if x < 1 else x for x in a]
    diff, (lo, hi) = paired_bootstrap_diff(a, b, seed=3)
    assert diff == pytest.approx(0.1875)
    assert lo <= diff <= hi and lo > 0  # every problem moved the same way: clearly ahead
    assert paired_bootstrap_diff(a, b, seed=3) == (diff, (lo, hi))  # seeded
    same, (slo, shi) = paired_bootstrap_diff(a, a)
    assert same == 0 and slo == shi == 0
    with pytest.raises(ValueError):
        paired_bootstrap_diff([0.1], [0.1, 0.2])


def test_problem_hash_is_layout_free_and_order_sensitive() -> None:
    one = [Problem(id="1", prompt="q1", answer="3", source="file:a", metadata={"row": 0}),
           Problem(id="2", prompt="q2", answer="4", source="file:b")]
    other_source = [Problem(id=p.id, prompt=p.prompt, answer=p.answer, source="x") for p in one]
    assert problems_sha256(one) == problems_sha256(other_source)
    assert problems_sha256(one) != problems_sha256(one[::-1])
    assert len(problems_sha256(one)) == 64


def test_task_benchmarks_are_registered() -> None:
    assert set(TASK_BENCHMARKS) <= set(benchmark_names())
    assert {"champ", "champ-all", "cpu-arithmetic", "chain-sum"} <= set(benchmark_names())
