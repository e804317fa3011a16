"""fipo_engine.data.files: every layout on a small fixture file, repeats grouping, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fipo_engine.data.files import LayoutError, read_problems
from tests.engine import fixtures as fx

ANSWERS = [p["answer"] for p in fx.PROBLEMS]
TEXTS = [p["problem"] for p in fx.PROBLEMS]


def test_problem_answer_jsonl_with_ids(tmp_path: Path) -> None:
    problems = read_problems(fx.problem_answer_jsonl(tmp_path / "b.jsonl"))
    assert [p.id for p in problems] == ["A1", "A2", "A3"]
    assert [p.answer for p in problems] == ANSWERS
    assert [p.prompt for p in problems] == TEXTS
    assert problems[0].source == "file:problem_answer"
    assert problems[0].metadata["repeats"] == 1


def test_ids_default_to_row_index(tmp_path: Path) -> None:
    problems = read_problems(fx.problem_answer_jsonl(tmp_path / "b.jsonl", with_ids=False))
    assert [p.id for p in problems] == ["0", "1", "2"]


def test_question_answer_cuts_gsm8k_answers(tmp_path: Path) -> None:
    problems = read_problems(fx.question_answer_jsonl(tmp_path / "q.jsonl"))
    assert [p.answer for p in problems] == ANSWERS
    assert problems[1].source == "file:question_answer"


def test_hf_export_parquet_capitalised_columns(tmp_path: Path) -> None:
    problems = read_problems(fx.hf_export_parquet(tmp_path / "test-00000-of-00001.parquet"))
    assert [p.id for p in problems] == ["2024-I-1", "2024-I-2", "2024-I-3"]
    assert [p.answer for p in problems] == ANSWERS
    assert problems[2].prompt == TEXTS[2]


def test_directory_of_shards(tmp_path: Path) -> None:
    shard_dir = tmp_path / "data"
    shard_dir.mkdir()
    fx.hf_export_parquet(shard_dir / "test-00000-of-00001.parquet")
    assert len(read_problems(shard_dir)) == 3


def test_problem_solution_takes_the_last_box(tmp_path: Path) -> None:
    problems = read_problems(fx.problem_solution_jsonl(tmp_path / "m.jsonl"))
    assert [p.answer for p in problems] == ANSWERS
    assert problems[0].id == "test/0.json"


def test_dapo_parquet_groups_repeats(tmp_path: Path) -> None:
    problems = read_problems(fx.dapo_parquet(tmp_path / "aime.parquet", repeats=4))
    assert len(problems) == 3
    assert [p.metadata["repeats"] for p in problems] == [4, 4, 4]
    assert [p.answer for p in problems] == ANSWERS
    first = problems[0]
    assert first.id == "uid-A1-0"  # extra_info.index of the first occurrence
    assert first.prompt[0]["role"] == "user" and first.prompt[0]["content"].endswith(TEXTS[0])
    assert first.metadata["data_source"] == "math_dapo"
    assert first.source == "file:dapo"


def test_dapo_repeat_with_another_answer_fails(tmp_path: Path) -> None:
    path = fx.dapo_parquet(tmp_path / "d.parquet", repeats=2)
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    rows[1]["reward_model"]["ground_truth"] = "999"
    fx.write_parquet(path, rows)
    with pytest.raises(ValueError, match="another answer"):
        read_problems(path)


def test_wrong_columns_names_columns_and_layouts(tmp_path: Path) -> None:
    with pytest.raises(LayoutError) as info:
        read_problems(fx.wrong_columns_jsonl(tmp_path / "w.jsonl"))
    message = str(info.value)
    assert "columns found: label, text" in message
    for expected in ("dapo: needs prompt, reward_model", "problem_answer: needs problem, answer",
                     "question_answer: needs question, answer"):
        assert expected in message


def test_forced_layout_is_checked(tmp_path: Path) -> None:
    path = fx.problem_answer_jsonl(tmp_path / "b.jsonl")
    with pytest.raises(LayoutError, match="needs columns prompt, reward_model"):
        read_problems(path, layout="dapo")
    with pytest.raises(LayoutError, match="unknown layout"):
        read_problems(path, layout="nope")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_problems(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_problems(bad)
    dup = fx.write_jsonl(tmp_path / "dup.jsonl", [{"id": "x", "problem": "a", "answer": "1"},
                                                    {"id": "x", "problem": "b", "answer": "2"}])
    with pytest.raises(ValueError, match="duplicate problem id 'x'"):
        read_problems(dup)
    with pytest.raises(ValueError, match="unsupported file type"):
        read_problems(fx.write_jsonl(tmp_path / "x.csv", []))
