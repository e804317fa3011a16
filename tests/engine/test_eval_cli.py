"""`fipo eval --responses` end to end: the real command in a subprocess, JSON and table output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fipo_engine.eval.runner import Sample, evaluate
from tests.engine import fixtures as fx

ROOT = Path(__file__).resolve().parents[2]

# A1 gold 033, A2 gold 0.5, A3 gold 4; 4 responses each.
RESPONSES = {
    "A1": [r"\boxed{33}", r"\boxed{033}", r"\boxed{34}", "no idea"],           # 2/4 right, majority 33 (norm)
    "A2": [r"\boxed{1/3}", r"\boxed{\frac{1}{3}}", r"\boxed{\frac12}", r"\boxed{1/3}"],  # 1/4, majority 1/3 wrong
    "A3": [r"\boxed{5}", r"\boxed{5}", r"\boxed{6}", r"\boxed{7}"],                   # 0/4
}


def _fipo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fipo_engine.cli", "eval", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


def test_responses_end_to_end_json(tmp_path: Path) -> None:
    bench = fx.problem_answer_jsonl(tmp_path / "bench.jsonl")
    responses = fx.responses_jsonl(tmp_path / "resp.jsonl", RESPONSES)
    out = tmp_path / "result.json"
    proc = _fipo("--responses", str(responses), "--benchmark", str(bench), "--json", "--out", str(out),
                 "--temperature", "0.6")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(out.read_text())
    assert data["benchmark"] == "bench"
    assert data["n_problems"] == 3 and data["k"] == 4 and data["n_samples"] == 12
    assert data["pass_at_1"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert data["cons_at_k"] == pytest.approx(1 / 3)       # only A1's majority (33) is right
    assert data["pass_at_k"] == pytest.approx(2 / 3)       # A1 and A2 have a correct sample
    low, high = data["pass_at_1_ci"]
    assert low <= data["pass_at_1"] <= high
    assert data["truncation_rate"] is None                 # the file gives no lengths
    assert data["settings"] == {"responses": str(responses), "temperature": 0.6}  # only what was given
    by_id = {p["id"]: p for p in data["problems"]}
    assert by_id["A1"]["correct"] == 2
    assert by_id["A1"]["answers"] == ["33", "033", "34", None]
    assert by_id["A2"]["majority"] == "1/3"


def _fipo_inline(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                 *args: str) -> tuple[int, str, str]:
    """The same `fipo eval` entry point in this process (no interpreter start): (exit code, out, err)."""
    from fipo_engine.cli import main

    monkeypatch.setattr(sys, "argv", sys.argv[:])  # main() rewrites sys.argv
    code = main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_responses_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bench = fx.problem_answer_jsonl(tmp_path / "bench.jsonl")
    responses = fx.responses_jsonl(tmp_path / "resp.jsonl", RESPONSES)
    code, out, err = _fipo_inline(capsys, monkeypatch, "--responses", str(responses), "--benchmark", str(bench))
    assert code == 0, err
    assert "Pass@1 (avg@4)" in out and "25.0%" in out and "A3" in out

    partial = fx.responses_jsonl(tmp_path / "partial.jsonl", {"A1": RESPONSES["A1"]})
    code, _, err = _fipo_inline(capsys, monkeypatch, "--responses", str(partial), "--benchmark", str(bench), "--json")
    assert code == 2 and "have no responses" in err
    code, out, _ = _fipo_inline(capsys, monkeypatch, "--responses", str(partial), "--benchmark", str(bench),
                                "--json", "--partial")
    assert code == 0 and json.loads(out)["n_problems"] == 1

    wrong = fx.wrong_columns_jsonl(tmp_path / "wrong.jsonl")
    code, _, err = _fipo_inline(capsys, monkeypatch, "--responses", str(responses), "--benchmark", str(wrong))
    assert code == 2 and "columns found: label, text" in err
    unknown = fx.responses_jsonl(tmp_path / "unknown.jsonl", {**RESPONSES, "Z9": ["x"]})
    code, _, err = _fipo_inline(capsys, monkeypatch, "--responses", str(unknown), "--benchmark", str(bench))
    assert code == 2 and "not in the benchmark" in err


def test_dapo_benchmark_with_answer_lines(tmp_path: Path) -> None:
    """DAPO prompts ask for 'Answer: X'; the grader reads that line when there is no box."""
    bench = fx.dapo_parquet(tmp_path / "aime.parquet", repeats=3)
    from fipo_engine.data.files import read_problems

    problems = read_problems(bench)
    samples = {p.id: [Sample("...\nAnswer: " + fx.PROBLEMS[i]["answer"], 100, False),
                      Sample("...\nAnswer: 0", 200, True)] for i, p in enumerate(problems)}
    result = evaluate("aime", problems, samples, k=2)
    assert result.pass_at_1 == pytest.approx(0.5)
    assert result.pass_at_k == pytest.approx(1.0)
    assert result.truncation_rate == pytest.approx(0.5)
    assert result.response_length_mean == pytest.approx(150.0)
    assert result.response_length_p75 == pytest.approx(200.0)
    with pytest.raises(ValueError, match="pass@3 needs at least 3"):
        evaluate("aime", problems, samples, k=3)


def test_chain_sum_benchmark_grades_the_chains_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in ``chain-sum`` board scores what cot-demo writes: a worked chain whose last line is
    the digit (right), a one-line answer (right or wrong), and a chain ending in a wrong digit."""
    import numpy as np

    from fipo_engine.data.chain_sum import solution
    from fipo_engine.data.problem import Problem
    from fipo_engine.eval.benchmarks import load_benchmark

    def full_chain(problem: Problem) -> str:
        return solution(problem.metadata["terms"], "full", np.random.default_rng(0), modulus=10)

    bench = load_benchmark("chain-sum")
    assert len(bench.problems) == 100 and bench.grader == "exact"
    assert load_benchmark("chain-sum").problems == bench.problems  # generated offline, seeded
    first, second = bench.problems[:2]
    wrong_digit = str((int(second.answer) + 1) % 10)
    responses = fx.responses_jsonl(tmp_path / "resp.jsonl", {
        first.id: [full_chain(first), first.answer],
        second.id: [full_chain(second).rsplit("\n", 1)[0] + "\n" + wrong_digit, wrong_digit],
    })
    code, out, err = _fipo_inline(capsys, monkeypatch, "--responses", str(responses), "--benchmark", "chain-sum",
                                  "--json", "--partial")
    assert code == 0, err
    by_id = {p["id"]: p for p in json.loads(out)["problems"]}
    assert by_id[first.id]["correct"] == 2 and by_id[second.id]["correct"] == 0
