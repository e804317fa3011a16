"""Benchmark registry: CHAMP built in (numeric subset by default, natural order), files by path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fipo_engine.eval.benchmarks import benchmark_names, load_benchmark
from fipo_engine.rewards import grade
from tests.engine import fixtures as fx


def test_champ_numeric_subset_in_natural_order() -> None:
    bench = load_benchmark("champ")
    ids = [p.id for p in bench.problems]
    assert bench.grader == "math" and "boxed" in bench.prompt_suffix
    assert ids[0] == "P_Combinatorics_1" and bench.problems[0].answer == "239"
    combinatorics = [int(i.rsplit("_", 1)[1]) for i in ids if i.startswith("P_Combinatorics_")]
    assert combinatorics == sorted(combinatorics)  # natural, not lexicographic (…_9 before …_10)
    assert all(re.fullmatch(r"[+-]?\d+(\.\d+)?(/\d+)?", p.answer) for p in bench.problems)
    assert 50 <= len(bench.problems) < 270
    # every numeric gold answer is accepted by the math grader when boxed (grader and data agree)
    assert all(grade("math", f"\\boxed{{{p.answer}}}", p).correct for p in bench.problems)


def test_champ_all_has_every_problem() -> None:
    bench = load_benchmark("champ-all")
    assert len(bench.problems) == 270
    assert len({p.id for p in bench.problems}) == 270


def test_file_benchmark_named_after_the_file(tmp_path: Path) -> None:
    bench = load_benchmark(str(fx.dapo_parquet(tmp_path / "aime-2024.parquet")))
    assert bench.name == "aime-2024" and len(bench.problems) == 3
    forced = load_benchmark(str(fx.problem_answer_jsonl(tmp_path / "b.jsonl")), grader="exact", prompt_suffix="")
    assert forced.grader == "exact" and forced.prompt_suffix == ""


def test_unknown_benchmark_lists_names() -> None:
    assert {"champ", "champ-all"} <= set(benchmark_names())
    with pytest.raises(FileNotFoundError, match=r"neither a benchmark .*champ"):
        load_benchmark("aime-2099")
