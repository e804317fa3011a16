"""Evaluation: Pass@1 as avg@k, cons@k, pass@k, a bootstrap CI, on named benchmarks or problem files.

The trainer's in-training evaluation uses the same pieces:
``result = evaluate(name, problems, samples, grader=cfg.reward.name, k=k)`` then
``tracker.eval(**result.event_payload(step))``.
"""

from fipo_engine.eval.benchmarks import BENCHMARKS, Benchmark, benchmark_names, load_benchmark
from fipo_engine.eval.runner import EvalResult, ProblemResult, Sample, evaluate, format_table, read_responses
from fipo_engine.eval.stats import avg_at_k, bootstrap_ci, majority_vote, pass_at_k

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "EvalResult",
    "ProblemResult",
    "Sample",
    "avg_at_k",
    "benchmark_names",
    "bootstrap_ci",
    "evaluate",
    "format_table",
    "load_benchmark",
    "majority_vote",
    "pass_at_k",
    "read_responses",
]
