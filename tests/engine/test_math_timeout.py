"""math-verify with a hard timeout (``fipo_engine.rewards.pool``), in both reward paths.

``\\boxed{9^{9^{9^{9}}}}`` makes sympy compute a power tower inside one C call. In a thread (where
OpenRLHF calls our reward function) math-verify has no timeout, and the call, holding the GIL, never
returns: the whole process stalls. So the check runs in a subprocess that the test can kill.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fipo_engine.data.problem import Problem
from fipo_engine.rewards import get_grader
from fipo_engine.rewards.graders import grade_math_many
from fipo_engine.rewards.pool import TimeoutPool
from tests.engine.pool_helpers import sleep_chunk

ROOT = Path(__file__).resolve().parents[2]
HANG = "Let me compute. \\boxed{9^{9^{9^{9}}}}"

SCRIPT = textwrap.dedent('''
    import importlib.util, json, sys, threading, time
    import fipo_engine.integrations.openrlhf.reward_func as shipped
    from fipo_engine.config import RewardConfig
    from fipo_engine.data.problem import Problem
    from fipo_engine.rewards import score_responses

    spec = importlib.util.spec_from_file_location("reward_func", shipped.__file__)  # as OpenRLHF loads it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hang, prompt = sys.argv[1], "Q: "
    out = {}

    def openrlhf_path():  # OpenRLHF: one-element lists, in a thread
        out["openrlhf"] = [module.reward_func([prompt + r], [prompt], [{"ground_truth": "3"}])["rewards"].item()
                           for r in (hang, "\\\\boxed{3}")]

    def native_path():  # the native trainer's batch scoring, here called from a thread too
        batch = score_responses(RewardConfig(name="math", overlong_buffer={"enable": False}),
                                [Problem(id="p", prompt="q", answer="3", source="t")] * 2, [hang, "\\\\boxed{3}"],
                                [10, 10], 100)
        out["native"] = batch.scores

    t0 = time.monotonic()
    for target in (openrlhf_path, native_path):
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join()
    out["elapsed"] = time.monotonic() - t0
    print(json.dumps(out))
''')


@pytest.mark.timeout(200)
def test_a_pathological_answer_costs_the_timeout_in_both_paths() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "FIPO_MATH_TIMEOUT_S": "3", "FIPO_MATH_WORKERS": "1"}
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, HANG], capture_output=True, text=True, env=env,
                              timeout=120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail("grading hung: math-verify ran without a timeout in a thread")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = __import__("json").loads(proc.stdout.strip().splitlines()[-1])
    assert out["openrlhf"] == [-1.0, 1.0]
    assert out["native"] == [-1.0, 1.0]
    assert out["elapsed"] < 60


def test_batch_grading_agrees_with_the_per_answer_grader() -> None:
    answers = ["33", "033", "\\frac{1}{2}", "0.5", "2", "x+1", "1+x", "\\sqrt{4}", "10^{2}", "100", "-7"]
    golds = ["33", "33", "0.5", "\\frac{1}{2}", "3", "1+x", "x+1", "2", "100", "10^2", "7"]
    problems = [Problem(id=str(i), prompt="q", answer=g, source="t") for i, g in enumerate(golds)]
    responses = [f"so \\boxed{{{a}}}" for a in answers] + ["no box"]
    problems.append(Problem(id="x", prompt="q", answer="1", source="t"))
    grade = get_grader("math")
    assert grade_math_many(responses, problems) == [grade(r, p) for r, p in zip(responses, problems, strict=True)]


def test_a_stuck_chunk_is_given_up_and_the_pool_recovers() -> None:
    pool = TimeoutPool(workers=1, timeout_s=1.0)
    try:
        t0 = time.monotonic()
        out = pool.map(sleep_chunk, [0.0, 0.0, 60.0, 0.0], default=False)
        assert time.monotonic() - t0 < 15
        assert out[:2] == [True, True] and out[2] is False and pool.timeouts >= 1
        assert pool.map(sleep_chunk, [0.0, 0.0], default=False) == [True, True]  # a fresh pool
    finally:
        pool.close()
