"""GPU smoke test of both Ray engines against a real control plane on the same machine (docs/ray-cluster.md).

    bash bench/gpu_smoke.sh            # wrapper: checks the two environments, then runs this

Needs one GPU machine with two Python environments:
* ``CP_PYTHON`` (this interpreter): the control plane (this repository's ``.venv``);
* ``NODE_PYTHON``: the GPU node install of docs/ray-cluster.md (OpenRLHF 0.11.2 + vLLM 0.29.0 +
  fipo ``--no-deps``), whose ``bin/`` holds ``ray`` and ``python3``.

It starts a Ray head (``--port 6380``, Redis keeps 6379), a control plane (daphne, Celery worker and
beat, own SQLite database: ``tests/worker/stack.py``), and launches through the control plane's API:
1. ``native``: SmolLM2-135M, vLLM rollouts, 2 steps (``fipo train`` as a Ray job);
2. ``openrlhf``: the same model exported to a Hugging Face directory, OpenRLHF's Ray PPO trainer with
   the FIPO hook, 2 steps on 64 generated arithmetic prompts (``math`` grader).
Then it checks that metrics, samples and a terminal status reached the control plane, prints each
run's step times, and stops everything it started. Budget: under 10 minutes of GPU time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.worker.stack import live_stack  # noqa: E402

NODE_PYTHON = Path(os.environ.get("NODE_PYTHON", "/opt/fipo/bin/python3"))
RAY = NODE_PYTHON.parent / "ray"
WORK = Path(os.environ.get("SMOKE_DIR", "/tmp/fipo-gpu-smoke"))
DASHBOARD = "http://127.0.0.1:8265"
RUN_TIMEOUT_S = float(os.environ.get("SMOKE_RUN_TIMEOUT_S", "420"))


def two_steps(engine: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Overrides of the smollm2-gsm preset: 2 small steps on the Ray launcher, one GPU."""
    return {"launcher.backend": "ray", "launcher.ray.address": DASHBOARD, "launcher.ray.engine": engine,
            "launcher.ray.num_nodes": 1, "launcher.ray.gpus_per_node": 1,
            "launcher.ray.env_vars": {"FIPO_PYTHON": str(NODE_PYTHON), "FIPO_RUNS_DIR": str(WORK / "runs"),
                                      "PATH": f"{NODE_PYTHON.parent}:{os.environ['PATH']}"},
            "rollout.backend": "vllm", "rollout.n": 4, "rollout.max_new_tokens": 128,
            "rollout.gpu_memory_utilization": 0.5, "reward.overlong_buffer.length": 32,
            "trainer.total_steps": 2, "trainer.train_batch_size": 8, "trainer.gen_batch_size": 8,
            "trainer.ppo_mini_batch_size": 4, "trainer.micro_batch_size": 4, "trainer.eval_every": 0,
            "trainer.save_every": 0, "trainer.log_samples": 2, "trainer.warmup_steps": 0,
            # every step must train: dynamic sampling could drop all 8 groups of a 135M model's rollout
            "trainer.dynamic_sampling": False, **extra}


def prepare_openrlhf_inputs() -> tuple[Path, Path]:
    """SmolLM2 as a Hugging Face directory (OpenRLHF loads only those) and a DAPO-layout prompt file."""
    model_dir, data = WORK / "smollm2-hf", WORK / "arith.jsonl"
    if not (model_dir / "config.json").exists():
        subprocess.run([str(NODE_PYTHON), "-c", (
            "from fipo_engine.config import ModelConfig; from fipo_engine.models.loader import load_smollm2, save_policy;"
            f"save_policy(load_smollm2(ModelConfig(source='smollm2')), {str(model_dir)!r})")], check=True, cwd=ROOT)
    rng = random.Random(0)
    with data.open("w") as out:
        for _ in range(64):
            a, b = rng.randint(2, 60), rng.randint(2, 60)
            out.write(json.dumps({"prompt": [{"role": "user", "content": f"What is {a} + {b}? Put the answer in \\boxed{{}}."}],
                                  "reward_model": {"ground_truth": str(a + b)}}) + "\n")
    return model_dir, data


def check(stack: Any, run_id: int, started: float) -> dict[str, Any]:
    """Wait for a terminal status; count metrics and samples; the step times from timing/step_s."""
    detail = stack.wait_status(run_id, {"succeeded", "failed", "cancelled", "lost"}, timeout_s=RUN_TIMEOUT_S)
    api = stack.api()
    keys = api.get(f"/runs/{run_id}/metrics").json().get("keys", [])
    series = api.get(f"/runs/{run_id}/metrics", params={"keys": "timing/step_s,reward/mean"}).json()["series"]
    samples = api.get(f"/runs/{run_id}/samples/").json().get("results", [])
    step_s = series.get("timing/step_s", {}).get("value", [])
    return {"status": detail["status"], "metric_keys": len(keys), "samples": len(samples),
            "step_s": [round(v, 1) for v in step_s], "wall_s": round(time.monotonic() - started, 1)}


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    model_dir, data = prepare_openrlhf_inputs()
    subprocess.run([str(RAY), "start", "--head", "--port", "6380", "--num-gpus", "1", "--dashboard-host",
                    "127.0.0.1", "--disable-usage-stats"], check=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        with live_stack(WORK / "stack", tag="gpusmoke") as stack:
            team = stack.team_id()
            runs = {
                "native": two_steps("native", {}),
                "openrlhf": two_steps("openrlhf", {"model.source": "hf", "model.path": str(model_dir),
                                                   "data.source": "file", "data.path": str(data),
                                                   "reward.name": "math"}),
            }
            for name, overrides in runs.items():
                response = stack.api().post("/runs/", json={"name": f"gpu-smoke-{name}", "team": team,
                                                            "preset": "smollm2-gsm", "overrides": overrides})
                response.raise_for_status()
                run_id = response.json()["id"]
                started = time.monotonic()
                stack.launch(run_id)
                try:
                    results[name] = check(stack, run_id, started)
                except Exception as exc:  # report and go on to the other engine
                    results[name] = {"status": f"error: {exc}", "log": stack.log_tail(40)}
    finally:
        subprocess.run([str(RAY), "stop", "--force"], check=False)
    print(f"\n{'engine':10s} {'status':10s} {'metric keys':>11s} {'samples':>7s} {'wall s':>7s}  step times (s)")
    ok = True
    for name, r in results.items():
        print(f"{name:10s} {r['status'][:10]:10s} {r.get('metric_keys', 0):11d} {r.get('samples', 0):7d} "
              f"{r.get('wall_s', 0):7.1f}  {r.get('step_s', [])}")
        ok &= r["status"] == "succeeded" and r.get("metric_keys", 0) > 0 and r.get("samples", 0) > 0
        if "log" in r:
            print(r["log"])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
