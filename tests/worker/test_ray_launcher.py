"""The ``ray`` launcher: pure parts without Ray, then real jobs on a local Ray head (port 6380).

The live tests submit a tiny ``fipo train`` through the Ray Jobs REST API exactly as the Celery
task does, check that its tracking events reach the control plane's ingest endpoint, tail its log,
and cancel a second job with the stop confirmed by Ray.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import httpx
import pytest

from fipo_engine.config import apply_overrides, preset
from tests.worker.conftest_ray import REPO, free_port, job_env, start_head
from worker.launchers.base import LauncherError, LaunchSpec, get_launcher
from worker.launchers.ray import (
    MAX_BENCHMARK_ENV_CHARS,
    RayJobsClient,
    RayLauncher,
    build_submission,
    eval_submission,
    job_url,
    map_state,
    split_handle,
    status_from_info,
    submission_id_for,
)


def tiny_config(address: str, **extra: object) -> dict:
    """cpu-demo shrunk to one short step, launched on Ray (the native engine)."""
    overrides = {
        "trainer.total_steps": 1, "trainer.sft_warmup_steps": 0, "trainer.train_batch_size": 2,
        "trainer.gen_batch_size": 2, "trainer.ppo_mini_batch_size": 1, "trainer.micro_batch_size": 4,
        "trainer.dynamic_sampling": False, "trainer.eval_every": 0, "trainer.save_every": 0,
        "trainer.log_samples": 1, "rollout.n": 2, "rollout.max_new_tokens": 6,
        "reward.overlong_buffer.length": 2, "data.train_size": 8, "data.eval_size": 0,
        "launcher.backend": "ray", "launcher.ray.address": address, **extra,
    }
    return apply_overrides(preset("cpu-demo"), overrides).model_dump(mode="json")


def spec_for(tmp_path: Path, run_id: str, config: dict, server_url: str = "http://127.0.0.1:9", **env: str) -> LaunchSpec:
    return LaunchSpec(run_id=run_id, config=config, server_url=server_url, token=f"tok-{run_id}",
                      workdir=tmp_path / run_id, log_path=tmp_path / run_id / "log.txt",
                      env=job_env(FIPO_RUNS_DIR=str(tmp_path), **env))


# ------------------------------------------------------------------------------ no Ray needed
def test_registered_and_handles_round_trip() -> None:
    assert isinstance(get_launcher("ray"), RayLauncher)
    assert submission_id_for("42") == submission_id_for("42") == "fipo-run-42"
    assert submission_id_for("a b/c") == "fipo-run-a-b-c"
    handle = job_url("http://head:8265/", "fipo-run-7")
    assert handle == "http://head:8265/api/jobs/fipo-run-7"
    assert split_handle(handle) == ("http://head:8265", "fipo-run-7")
    with pytest.raises(LauncherError, match="not a Ray job handle"):
        split_handle("pid:1:2:/tmp")


def test_status_mapping() -> None:
    assert [map_state(s) for s in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED", "NEW")] == [
        "pending", "running", "succeeded", "failed", "stopped", "unknown"]
    failed = status_from_info({"status": "FAILED", "message": "boom", "driver_exit_code": 3})
    assert (failed.state, failed.message, failed.exit_code) == ("failed", "boom", 3)
    assert status_from_info(None).state == "unknown"


def test_submission_carries_config_server_and_token(tmp_path: Path) -> None:
    config = tiny_config("http://head:8265", **{"launcher.ray.env_vars": {"NCCL_DEBUG": "INFO"}})
    body = build_submission(spec_for(tmp_path, "5", config, server_url="http://cp:8000"))
    env = body["runtime_env"]["env_vars"]
    assert body["submission_id"] == "fipo-run-5"
    assert json.loads(env["FIPO_CONFIG_JSON"]) == config
    assert (env["FIPO_SERVER_URL"], env["FIPO_RUN_ID"], env["FIPO_RUN_TOKEN"]) == ("http://cp:8000", "5", "tok-5")
    assert env["NCCL_DEBUG"] == "INFO"
    assert "-m fipo_engine.cli train" in body["entrypoint"]
    assert "tok-5" not in body["entrypoint"]  # the token travels in the env, not on the command line
    assert "FIPO_RUN_TOKEN" not in body["entrypoint"]  # nor expanded into the trainer's argv by the shell
    assert "worker_process_setup_hook" not in body["runtime_env"]


def test_openrlhf_engine_submits_the_command_builder_output(tmp_path: Path) -> None:
    from fipo_engine.integrations.openrlhf.command import openrlhf_command

    cfg = preset("fipo-32b")
    body = build_submission(spec_for(tmp_path, "9", cfg.model_dump(mode="json")))
    assert body["entrypoint"] == openrlhf_command(cfg)
    assert body["runtime_env"]["worker_process_setup_hook"] == "fipo_engine.integrations.openrlhf.hook.setup"


def test_eval_submission_carries_the_benchmark_in_its_environment() -> None:
    """An eval job on Ray: ``fipo eval --report-lines`` (results come back through the driver log) with
    a stored benchmark gzip+base64 in one environment variable, and a clear refusal when it cannot fit."""
    import base64
    import gzip
    import shlex

    content = b'{"id": "p1", "problem": "1+1", "answer": "2"}\n'
    body = eval_submission(key="7-ab12", eval_args=["--model", "/c/run 1/checkpoints/step_2", "--benchmark", "aime"],
                           benchmark=content, env={"FIPO_PYTHON": "/venv/bin/python"}, metadata={"fipo_eval_job": "7"})
    env = body["runtime_env"]["env_vars"]
    assert body["submission_id"] == "fipo-eval-7-ab12" and body["metadata"] == {"fipo_eval_job": "7"}
    assert gzip.decompress(base64.b64decode(env["FIPO_BENCHMARK_GZ_B64"])) == content
    assert env["FIPO_PYTHON"] == "/venv/bin/python"
    argv = shlex.split(body["entrypoint"].removeprefix('exec "${FIPO_PYTHON:-python3}" '))
    assert argv == ["-m", "fipo_engine.cli", "eval", "--model", "/c/run 1/checkpoints/step_2", "--benchmark", "aime",
                    "--report-lines", "--benchmark-env", "FIPO_BENCHMARK_GZ_B64"]
    builtin = eval_submission(key="8-cd", eval_args=["--benchmark", "champ"], benchmark=None, env={}, metadata={})
    assert "FIPO_BENCHMARK_GZ_B64" not in builtin["runtime_env"]["env_vars"] and "--benchmark-env" not in builtin["entrypoint"]

    import os

    too_big = os.urandom(MAX_BENCHMARK_ENV_CHARS)  # random bytes do not compress
    with pytest.raises(LauncherError, match=r"too large for a Ray eval job .* the limit is 120 KB"):
        eval_submission(key="9", eval_args=[], benchmark=too_big, env={}, metadata={})


def test_unreachable_head_fails_with_a_reason(tmp_path: Path) -> None:
    sleeps: list[float] = []
    client = RayJobsClient(f"http://127.0.0.1:{free_port()}", attempts=4, backoff_s=0.01, sleep=sleeps.append)
    with pytest.raises(LauncherError, match=r"could not be reached after 4 attempts \(no connection\)"):
        client.submit({"submission_id": "x", "entrypoint": "true"})
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff, then give up
    launcher = RayLauncher(attempts=2, backoff_s=0.01)
    with pytest.raises(LauncherError, match=r"could not be reached") as info:
        launcher.start(spec_for(tmp_path, "1", tiny_config(f"http://127.0.0.1:{free_port()}")))
    assert "127.0.0.1" not in str(info.value)  # a user's message never names the cluster's hosts


# ------------------------------------------------------------------------------ a real Ray head
@pytest.fixture(scope="module")
def ray_head():
    yield from start_head()


def wait_for(launcher: RayLauncher, handle: str, states: set[str], timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        status = launcher.poll(handle)
        if status.state in states or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


PROBE = '''
import dataclasses
import json
import ray

ray.init()


@ray.remote(num_cpus=1)
def probe():
    import torch

    import openrlhf.models
    from fipo_engine.algorithms import PolicyLossConfig, policy_loss
    from openrlhf.trainer.ray import ppo_actor

    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 16, generator=g) * 2
    new = old + 0.5 * torch.randn(4, 16, generator=g)
    adv = torch.randn(4, 1, generator=g).expand(4, 16)
    mask = torch.ones(4, 16, dtype=torch.bool)
    trainer = ppo_actor.ActorPPOTrainer()
    status = trainer.training_step((new, old, adv, mask), 0.0, 0)
    ours = policy_loss("fipo", new, old, adv, mask, PolicyLossConfig.fipo_7b())
    return {"models": openrlhf.models.PolicyLoss.__name__, "ppo_actor": ppo_actor.PolicyLoss.__name__,
            "safety": trainer.actor_loss_fn.loss_config.safety_thresh,
            "equal": bool(torch.equal(status["metrics"]["policy_loss"], ours.loss)),
            "fipo_metrics": sum(k.startswith("fipo:") for k in status["metrics"])}


print("PROBE " + json.dumps(ray.get(probe.remote())))
'''


@pytest.fixture(scope="module")
def hook_probe(ray_head: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Submit the setup-hook probe job (see PROBE) without waiting, so it runs while other tests do."""
    from fipo_engine.integrations.openrlhf.command import SETUP_HOOK
    from tests.engine.test_openrlhf_wheel import extract, standin_site

    tmp = tmp_path_factory.mktemp("hook")
    site = standin_site(extract(tmp / "wheel"), tmp / "site")
    script = tmp / "probe.py"
    script.write_text(PROBE)
    env = job_env(PYTHONPATH=f"{site}:{REPO}", FIPO_CONFIG_JSON=preset("fipo-7b").model_dump_json())
    return RayJobsClient(ray_head).submit({"entrypoint": f"{sys.executable} {script}", "submission_id": "fipo-hook-probe",
                                           "runtime_env": {"env_vars": env, "worker_process_setup_hook": SETUP_HOOK}})


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)  # about 100 s on 2 idle cores; generous for a loaded CI machine
def test_celery_launches_ray_jobs_whose_events_reach_the_control_plane_and_cancel_stops_them(
        ray_head: str, hook_probe: str, tmp_path: Path) -> None:
    """The whole path on real parts: API -> Celery worker -> ray launcher -> Ray job running ``fipo train``
    -> tracking events over HTTP -> stored metrics; then a second run cancelled with Ray's stop confirmed.
    (``hook_probe`` is requested only so that the probe job runs on the head while the stack starts.)"""
    from tests.worker.stack import live_stack

    on_ray = {"launcher.backend": "ray", "trainer.total_steps": 2}
    launcher = RayLauncher()
    # The deployment names the head and gives its jobs their interpreter and paths (FIPO_RAY_HEADS).
    heads = {"default": {"address": ray_head, "env_vars": job_env(FIPO_RUNS_DIR=str(tmp_path / "ray-runs"))}}
    with live_stack(tmp_path / "stack", tag="ray", beat=False, FIPO_CANCEL_GRACE_S="30",
                    FIPO_RAY_HEADS=json.dumps(heads)) as stack:
        run = stack.create_run("on ray", overrides=on_ray)
        long_run = stack.create_run("on ray, cancelled", overrides={**on_ray, "trainer.total_steps": 100_000})
        stack.launch(run["id"])
        stack.launch(long_run["id"])
        detail = stack.wait_status(run["id"], {"succeeded", "failed", "cancelled", "lost"}, timeout_s=400)
        assert detail["status"] == "succeeded", f"{detail['transitions']}\n{detail['log_tail'][-3000:]}"
        handle = detail["handle"]
        assert handle == f"{ray_head}/api/jobs/fipo-run-{run['id']}"
        series = stack.api().get(f"/runs/{run['id']}/metrics", params={"keys": "reward/mean"}).json()["series"]
        assert series["reward/mean"]["step"] == [1, 2]
        assert wait_for(launcher, handle, {"succeeded"}, 30).state == "succeeded"  # Ray agrees
        log_text, offset = launcher.read_log(handle, Path("unused"))
        shown = stack.api().get(f"/runs/{run['id']}/log").json()["text"]  # the log view reads the head
        assert shown and shown in log_text and detail["log_tail"] == ""  # the detail GET never waits on it
        assert launcher.read_log(handle, Path("unused"), offset) == ("", offset)

        # A retried submission of the same run is the same job (Ray's "already exists" is success).
        spec = spec_for(tmp_path, str(run["id"]), stack.run(run["id"])["config"])
        assert launcher.start(dataclasses.replace(spec, address=ray_head)) == handle

        deadline = time.monotonic() + 300
        while (long_detail := stack.run(long_run["id"]))["last_step"] is None:
            assert long_detail["status"] in {"queued", "starting", "running"}, long_detail["transitions"]
            assert time.monotonic() < deadline, stack.log_tail()
            time.sleep(0.5)
        assert stack.api().post(f"/runs/{long_run['id']}/cancel").status_code == 202
        long_detail = stack.wait_status(long_run["id"], {"cancelled", "failed", "succeeded", "lost"}, timeout_s=180)
        assert long_detail["status"] == "cancelled", long_detail["transitions"]
        assert "job stopped" in long_detail["transitions"][-1]["reason"]
        assert launcher.poll(long_detail["handle"]).state == "stopped"

        # An eval job of the Ray run runs on the same head: a stored benchmark travels in the job's
        # environment, progress and responses come back through the driver log, the entry is recorded.
        api = stack.api()
        rows = "".join(json.dumps({"id": f"q{i}", "problem": f"{i}+{i}", "answer": str(2 * i)}) + "\n" for i in range(4))
        bench = api.post("/benchmarks/", files={"file": ("sums.jsonl", rows.encode(), "application/jsonl")},
                         data={"name": "sums", "team": str(stack.team_id("alice")), "grader": "exact"})
        assert bench.status_code == 201, bench.text
        r = api.post("/leaderboards/evaluate/", json={"run": run["id"], "benchmark": "sums", "k": 2,
                                                       "max_new_tokens": 4})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 300
        while (job := api.get(f"/eval-jobs/{r.json()['job']}/").json())["status"] in {"queued", "running"}:
            assert time.monotonic() < deadline, stack.log_tail()
            time.sleep(1)
        assert job["status"] == "succeeded", f"{job}\n{stack.log_tail()}"
        assert (job["done"], job["total"]) == (4, 4)
        on_head = [j for j in httpx.get(f"{ray_head}/api/jobs/", timeout=10).json()
                   if (j.get("metadata") or {}).get("fipo_eval_job") == str(job["id"])]
        assert len(on_head) == 1 and on_head[0]["status"] == "SUCCEEDED"
        entry = api.get(f"/leaderboards/entries/{job['entry']}/").json()
        assert entry["benchmark_info"]["id"] == bench.json()["id"] and len(entry["problems"]) == 4
        assert all(len(p["responses"]) == 2 for p in entry["problems"])


@pytest.mark.ray
@pytest.mark.slow
def test_setup_hook_swaps_the_loss_inside_a_ray_worker(ray_head: str, hook_probe: str) -> None:
    """A job with the launcher's runtime-env hook: the worker's OpenRLHF PolicyLoss is ours, configured
    from $FIPO_CONFIG_JSON (here the 7B preset: safety threshold 3)."""
    final = wait_for(RayLauncher(), job_url(ray_head, hook_probe), {"succeeded", "failed", "stopped"}, 120)
    logs = RayJobsClient(ray_head).logs(hook_probe)
    assert final.state == "succeeded", logs[-3000:]
    result = json.loads(logs.split("PROBE ", 1)[1].splitlines()[0])
    assert result == {"models": "FipoPolicyLoss", "ppo_actor": "FipoPolicyLoss", "safety": 3.0, "equal": True,
                      "fipo_metrics": result["fipo_metrics"]}
    assert result["fipo_metrics"] > 10


def test_native_entrypoint_leaves_the_run_directory_empty_for_the_trainer_to_claim(tmp_path: Path) -> None:
    """The trainer refuses a directory that already holds run files it does not own (fipo_engine.rundir);
    the entrypoint used to write config.json inside the run directory first, so every native Ray job
    exited 2 before its first event and its run stayed `starting`."""
    import os
    import subprocess

    from fipo_engine.rundir import claim_run_dir
    from worker.launchers.ray import native_entrypoint

    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n')
    stub.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", ""), "FIPO_PYTHON": str(stub), "FIPO_RUNS_DIR": str(tmp_path / "runs"),
           "FIPO_CONFIG_JSON": '{"preset": "cpu-demo"}', "ARGS_FILE": str(tmp_path / "args")}
    subprocess.run(["/bin/sh", "-c", native_entrypoint("7")], env=env, check=True)
    args = (tmp_path / "args").read_text().split()
    config, out = args[args.index("train") + 1], args[args.index("--out") + 1]
    assert json.loads(Path(config).read_text()) == {"preset": "cpu-demo"}
    assert Path(out) == tmp_path / "runs" / "7" and not Path(config).is_relative_to(out)
    claim_run_dir(out, "0f0e0d0c-uid-of-run-7", run_id="7")  # raises RunDirConflict if anything is in the way
