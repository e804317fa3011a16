"""Grading throughput: how long the recipe's math grader takes per response, against the exact grader.

Why it matters: the 32B recipe grades 2048 x 16 = 32,768 responses per generation batch; the math
grader (math-verify parsing of the last box) is the per-response cost that scales with it.
Responses are AIME-like: integers (some with leading zeros), fractions, LaTeX forms, a share of
wrong and unboxed answers, each after ~1,000 characters of reasoning text (only the last 300
characters are inspected, as the recipe does).

Reported: responses per CPU-second and CPU microseconds per response for `exact` (baseline: string
normalisation only), `math` with a warm parse cache, and `math` on all-distinct answers.
Usage: .venv/bin/python bench/graders.py [--n 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fipo_engine.data.problem import Problem  # noqa: E402
from fipo_engine.rewards import get_grader  # noqa: E402

FORMS = [
    lambda a: rf"\boxed{{{a}}}",
    lambda a: rf"\boxed{{0{a}}}",
    lambda a: rf"The answer is $\boxed{{\frac{{{2 * a}}}{{2}}}}$.",
    lambda a: rf"\boxed{{{a + 1}}}",
    lambda a: f"Answer: {a}",
    lambda a: "I could not finish.",
]


def make_cases(n: int, distinct: bool, seed: int = 0) -> list[tuple[str, Problem]]:
    rng = random.Random(seed)
    filler = "Let us reason step by step about the problem. " * 22
    cases = []
    for i in range(n):
        answer = rng.randrange(1, 1000) if not distinct else 1000 + i
        problem = Problem(id=str(i), prompt="q", answer=str(answer), source="bench")
        cases.append((filler + rng.choice(FORMS)(answer), problem))
    return cases


def measure(grader: str, cases: list[tuple[str, Problem]]) -> float:
    """CPU seconds (process time: grading is single-threaded, and CPU time stays meaningful on a
    machine shared with other jobs, where wall-clock time does not)."""
    fn = get_grader(grader)
    start = time.process_time()
    for response, problem in cases:
        fn(response, problem)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    get_grader("math")(r"\boxed{1}", Problem("w", "q", "1", "bench"))  # import and first-call cost out of the timing
    repeated, distinct = make_cases(args.n, False), make_cases(args.n, True, seed=1)
    rows = [("exact (baseline)", measure("exact", repeated)),
            ("math, answers repeat (warm cache)", measure("math", repeated)),
            ("math, all answers distinct", measure("math", distinct))]
    base = rows[0][1]
    print(f"{args.n} responses each")
    print(f"{'grader':<36} {'resp/cpu-s':>11} {'cpu-us/resp':>12} {'x baseline':>11}")
    for name, seconds in rows:
        print(f"{name:<36} {args.n / seconds:>11.0f} {1e6 * seconds / args.n:>12.1f} {seconds / base:>11.1f}")


if __name__ == "__main__":
    main()
