"""`fipo eval --model` on a tiny checkpoint: sampling through the trainer's loader and rollout code."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine import fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama + character tokenizer saved as a Hugging Face directory (no download)."""
    from fipo_engine.config import ModelConfig
    from fipo_engine.models.loader import build_tiny, save_policy

    directory = tmp_path_factory.mktemp("tiny")
    save_policy(build_tiny(ModelConfig(), ["0123456789"], seed=0), directory)
    return directory


def test_model_eval_samples_k_per_problem_and_round_trips(tiny_checkpoint: Path, tmp_path: Path) -> None:
    bench = fx.problem_answer_jsonl(tmp_path / "bench.jsonl")
    saved = tmp_path / "saved.jsonl"
    max_new = 6
    proc = subprocess.run(
        [sys.executable, "-m", "fipo_engine.cli", "eval", "--model", str(tiny_checkpoint), "--benchmark", str(bench),
         "--k", "3", "--max-new-tokens", str(max_new), "--limit", "2", "--device", "cpu", "--json",
         "--save-responses", str(saved), "--step", "7"],
        cwd=ROOT, text=True, capture_output=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["n_problems"] == 2 and data["k"] == 3 and data["n_samples"] == 6
    assert data["step"] == 7
    assert data["settings"]["top_p"] == 0.7 and data["settings"]["max_new_tokens"] == max_new
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["A1", "A2"]
    lengths = [n for r in rows for n in r["lengths"]]
    flags = [t for r in rows for t in r["truncated"]]
    assert all(1 <= n <= max_new for n in lengths)
    assert all(n == max_new for n, t in zip(lengths, flags, strict=True) if t)
    assert data["truncation_rate"] == pytest.approx(sum(flags) / len(flags))
    assert data["response_length_mean"] == pytest.approx(sum(lengths) / len(lengths))

    # grading the saved responses gives the same numbers (one grader, one extractor)
    regrade = subprocess.run(
        [sys.executable, "-m", "fipo_engine.cli", "eval", "--responses", str(saved), "--benchmark", str(bench),
         "--limit", "2", "--json"], cwd=ROOT, text=True, capture_output=True, timeout=120,
    )
    assert regrade.returncode == 0, regrade.stderr
    again = json.loads(regrade.stdout)
    for key in ("pass_at_1", "cons_at_k", "pass_at_k", "truncation_rate", "response_length_mean"):
        assert again[key] == pytest.approx(data[key]), key
    assert [p["answers"] for p in again["problems"]] == [p["answers"] for p in data["problems"]]


def test_resolve_checkpoint_layouts(tmp_path: Path) -> None:
    """HF dir, `fipo train` step dir (model/ + run config.json), its model/ dir, and a run output dir."""
    from fipo_engine.config import preset
    from fipo_engine.eval.generate import resolve_checkpoint

    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text('{"model_type": "llama"}')
    assert resolve_checkpoint(hf) == (hf, None)

    run_config = preset("cpu-demo").to_json()
    for step in (5, 10):
        step_dir = tmp_path / "out" / "checkpoints" / f"step_{step:06d}"
        (step_dir / "model").mkdir(parents=True)
        (step_dir / "model" / "config.json").write_text('{"model_type": "llama"}')
        (step_dir / "config.json").write_text(run_config)
    newest = tmp_path / "out" / "checkpoints" / "step_000010"
    model_dir, cfg = resolve_checkpoint(newest)
    assert model_dir == newest / "model" and cfg["preset"] == "cpu-demo"
    assert resolve_checkpoint(newest / "model") == (newest / "model", cfg)
    assert resolve_checkpoint(tmp_path / "out") == (newest / "model", cfg)
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        resolve_checkpoint(tmp_path / "missing")


@pytest.mark.slow
def test_eval_from_the_environment_reports_in_lines(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """What a Ray eval job runs: the benchmark from an environment variable, results only as lines."""
    from fipo_engine.eval.report import ReportReader

    bench = fx.problem_answer_jsonl(tmp_path / "bench.jsonl")
    env = {**os.environ, "BENCH": base64.b64encode(gzip.compress(bench.read_bytes())).decode()}
    cmd = [sys.executable, "-m", "fipo_engine.cli", "eval", "--model", str(tiny_checkpoint), "--benchmark", "aime-mini",
           "--benchmark-env", "BENCH", "--grader", "exact", "--k", "2", "--max-new-tokens", "4", "--report-lines"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reader = ReportReader()
    reader.feed(proc.stdout)
    result = reader.result
    assert result is not None and result["benchmark"] == "aime-mini" and result["n_problems"] == 3
    assert result["grader"] == "exact"
    assert reader.progress == {**reader.progress, "done": 3, "total": 3}
    assert sorted(reader.responses) == sorted(p["id"] for p in result["problems"])
    assert all(len(r["responses"]) == 2 for r in reader.responses.values())
    assert all(line.startswith("fipo-eval ") for line in proc.stdout.splitlines())  # nothing else on stdout

    bad = subprocess.run([*cmd[:-1], "--report-lines"], cwd=ROOT, env={**env, "BENCH": "not base64!"}, text=True,
                         capture_output=True, timeout=120)
    assert bad.returncode == 2 and "is not gzip + base64" in bad.stderr
    named = subprocess.run([*cmd[:7], "../x", *cmd[8:]], cwd=ROOT, env=env, text=True, capture_output=True, timeout=120)
    assert named.returncode == 2 and "must be the benchmark's name" in named.stderr
    json.dumps(result)  # plain JSON all through
