"""The chain_sum task family: every level of detail ends in the right answer, seeded, validated."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fipo_engine.config import ConfigError, apply_overrides, preset
from fipo_engine.data import load_problems
from fipo_engine.data.chain_sum import DETAILS, fold, generate, solution, warm_start_solution
from fipo_engine.rewards.graders import grade


@pytest.mark.parametrize("modulus", [0, 10])
@pytest.mark.parametrize("detail", DETAILS)
def test_every_solution_ends_in_the_answer_the_grader_accepts(detail: str, modulus: int) -> None:
    problems = generate({"min_terms": 2, "max_terms": 9, "modulus": modulus}, size=200, seed=3)
    rng = np.random.default_rng(0)
    for p in problems:
        text = solution(p.metadata["terms"], detail, rng, modulus)
        assert text.splitlines()[-1] == p.answer
        assert grade("exact", text, p).correct
        assert not grade("exact", text + "1", p).correct


def test_full_detail_folds_one_term_per_line_and_direct_is_one_line() -> None:
    terms = [3, 5, 7, 2, 9]
    assert fold(terms, [1, 1, 1, 1]) == ["8+7+2+9", "15+2+9", "17+9", "26"]
    rng = np.random.default_rng(0)
    assert solution(terms, "direct", rng) == "26"
    assert len(solution(terms, "full", rng).splitlines()) == len(terms) - 1
    coarse = solution(terms, "coarse", rng).splitlines()
    assert 1 <= len(coarse) < len(terms) - 1


def test_fold_rejects_sizes_that_do_not_consume_every_term() -> None:
    with pytest.raises(ValueError, match="fold all 3 terms"):
        fold([1, 2, 3], [1])


def test_problems_are_seeded_and_the_prompt_is_the_sum() -> None:
    a = generate({}, size=50, seed=7)
    assert a == generate({}, size=50, seed=7)
    assert a != generate({}, size=50, seed=8)
    for p in a:
        assert p.prompt == "+".join(map(str, p.metadata["terms"]))
        assert int(p.answer) == sum(p.metadata["terms"])
        assert 4 <= len(p.metadata["terms"]) <= 7


def test_warm_start_switches_to_the_final_mix_for_its_last_fraction() -> None:
    kwargs = {"solution_mix": {"full": 1.0}, "final_mix": {"direct": 1.0}, "final_fraction": 0.25}
    (problem,) = generate(kwargs, size=1, seed=0)
    rng = np.random.default_rng(0)
    early = [warm_start_solution(problem, rng, progress=x) for x in np.linspace(0, 0.74, 20)]
    late = [warm_start_solution(problem, rng, progress=x) for x in np.linspace(0.75, 0.99, 20)]
    assert all(len(s.splitlines()) == len(problem.metadata["terms"]) - 1 for s in early)
    assert all(s == problem.answer for s in late)


def test_solution_mix_weights_set_the_detail_frequencies() -> None:
    (problem,) = generate({"min_terms": 6, "max_terms": 6, "solution_mix": {"direct": 3, "full": 1},
                           "final_fraction": 0.0}, size=1, seed=0)
    rng = np.random.default_rng(1)
    counts = collections.Counter(len(warm_start_solution(problem, rng).splitlines()) for _ in range(4000))
    assert set(counts) == {1, 5}
    assert counts[1] / 4000 == pytest.approx(0.75, abs=0.03)


def test_cot_demo_loads_a_held_out_split_without_shared_questions() -> None:
    cfg = preset("cot-demo")
    train, held = load_problems(cfg.data, cfg.trainer.seed)
    assert len(held) == cfg.data.eval_size
    assert not {p.prompt for p in held} & {p.prompt for p in train}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"min_terms": 5, "max_terms": 3}, "min_terms cannot exceed max_terms"),
    ({"solution_mix": {"sketchy": 1.0}}, "unknown detail"),
    ({"final_mix": {"direct": -1.0}}, "final_mix weights"),
    ({"min_terms": 1}, "task_kwargs.min_terms"),
    ({"colour": "red"}, "task_kwargs.colour"),
])
def test_bad_task_kwargs_fail_at_validation_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(preset("cot-demo"), {"data.task_kwargs": kwargs})
    assert err.value.errors[0]["path"] == "data"
    assert field in err.value.errors[0]["message"]
