"""Data sources and the seeded prompt stream that makes resume exact."""

from __future__ import annotations

from fipo_engine.config import DataConfig
from fipo_engine.data import PromptStream, load_problems, render_prompt
from fipo_engine.data.problem import Problem
from fipo_engine.models import build_char_tokenizer


def _problems(n: int) -> list[Problem]:
    return [Problem(id=str(i), prompt=f"q{i}", answer=str(i), source="t") for i in range(n)]


def test_stream_is_a_function_of_its_position() -> None:
    problems = _problems(10)
    straight = PromptStream(problems, seed=3)
    first = [p.id for p in straight.take(7)] + [p.id for p in straight.take(7)]
    resumed = PromptStream(problems, seed=3, position=7)
    assert [p.id for p in resumed.take(7)] == first[7:]
    # every epoch visits each problem once, in a new order
    assert sorted(first[:10]) == sorted(p.id for p in problems)
    assert first[:10] != [p.id for p in PromptStream(problems, seed=3, position=10).take(10)]


def test_unshuffled_stream_keeps_file_order() -> None:
    stream = PromptStream(_problems(3), seed=0, shuffle=False)
    assert [p.id for p in stream.take(5)] == ["0", "1", "2", "0", "1"]


def test_reasoning_gym_split_holds_out_eval_questions() -> None:
    cfg = DataConfig(task="basic_arithmetic", task_kwargs={"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                           "max_digits": 1}, train_size=300, eval_size=20)
    train, held = load_problems(cfg, seed=5)
    assert len(held) == 20
    assert not {p.prompt for p in held} & {p.prompt for p in train}
    assert held[0].metadata["task"] == "basic_arithmetic" and "entry" in held[0].metadata
    again_train, again_held = load_problems(cfg, seed=5)
    assert [p.id for p in again_held] == [p.id for p in held]
    assert [p.id for p in again_train] == [p.id for p in train]


def test_plain_prompt_format_for_models_without_chat_template() -> None:
    tok = build_char_tokenizer()
    cfg = DataConfig(prompt_suffix=" Be brief.", system_prompt="You add.")
    problem = Problem(id="1", prompt="Calculate 1 + 2.", answer="3", source="t")
    assert render_prompt(problem, cfg, tok, chat=False) == "You add.\nCalculate 1 + 2. Be brief.\nAnswer: "
