"""Math grading with the timeout pool (issue 17 item 12) against the in-process grader it replaced.

The native trainer scores a whole generation batch with ``score_responses``; with ``reward.name=math``
it now sends the answers that need math-verify to killable worker processes in chunks
(``fipo_engine.rewards.pool``). This measures, in one run, on the AIME-like responses of
``bench/graders.py`` (1 in 6 needs math-verify, e.g. ``\\frac{2a}{2}``; the rest are decided by the
quick string/integer check in the caller):

* baseline: the per-answer ``math`` grader in this process (the old path);
* the batch path through a warm pool, and the one-off pool start (forkserver + importing sympy);

Wall-clock medians of 5 repeats (the pool works in other processes, so CPU time of this one would
flatter it). ``cpu-demo`` and ``smollm2-gsm`` use the ``reasoning_gym`` grader and never start the pool.
Usage: .venv/bin/python bench/math_pool.py [--n 2048]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.graders import make_cases  # noqa: E402
from fipo_engine.rewards import get_grader  # noqa: E402
from fipo_engine.rewards.graders import grade_math_many  # noqa: E402
from fipo_engine.rewards.pool import shared_pool  # noqa: E402


def wall(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2048)
    args = parser.parse_args()
    distinct = make_cases(args.n, True, seed=1)
    responses, problems = [r for r, _ in distinct], [p for _, p in distinct]
    grade = get_grader("math")
    grade(responses[0], problems[0])  # imports out of the timing
    start = time.perf_counter()
    grade_math_many(responses[:1] * 0 + [r"\boxed{\frac{1}{2}}"], [problems[0]])  # starts the pool
    pool_start = time.perf_counter() - start
    base = wall(lambda: [grade(r, p) for r, p in zip(responses, problems, strict=True)])
    batched = wall(lambda: grade_math_many(responses, problems))
    assert [g.correct for g in grade_math_many(responses, problems)] == [grade(r, p).correct for r, p in distinct]
    print(f"{args.n} responses, all answers distinct; pool of {shared_pool().workers} worker(s)")
    print(f"{'path':<44} {'wall s':>8} {'us/resp':>9} {'x baseline':>11}")
    for name, seconds in (("in-process grader, per answer (baseline)", base),
                          ("batch: quick check here + pool (warm)", batched)):
        print(f"{name:<44} {seconds:>8.3f} {1e6 * seconds / args.n:>9.1f} {seconds / base:>11.2f}")
    print(f"{'pool start (once per process)':<44} {pool_start:>8.3f}")
    shared_pool().close()


if __name__ == "__main__":
    main()
