"""The ``ray`` launcher: pure parts without Ray, then real jobs on a local Ray head (port 6380).

The live tests submit a tiny ``fipo train`` through the Ray Jobs REST API exactly as the Celery
task does, check that its tracking events reach the control plane's ingest endpoint, tail its log,
and cancel a second job with the stop confirmed by Ray.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from fipo_engine.config import apply_overrides, preset
from tests.worker.conftest_ray import REPO, IngestServer, free_port, job_env, start_head
from worker.launchers.base import LauncherError, LaunchSpec, get_launcher
from worker.launchers.ray import (
    RayJobsClient,
    RayLauncher,
    build_submission,
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
                      env=job_env(FIPO_RUN_DIR=str(tmp_path / run_id), **env))


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
    assert "worker_process_setup_hook" not in body["runtime_env"]


def test_openrlhf_engine_submits_the_command_builder_output(tmp_path: Path) -> None:
    from fipo_engine.integrations.openrlhf.command import openrlhf_command

    cfg = preset("fipo-32b")
    body = build_submission(spec_for(tmp_path, "9", cfg.model_dump(mode="json")))
    assert body["entrypoint"] == openrlhf_command(cfg)
    assert body["runtime_env"]["worker_process_setup_hook"] == "fipo_engine.integrations.openrlhf.hook.setup"


def test_unreachable_head_fails_with_a_reason(tmp_path: Path) -> None:
    sleeps: list[float] = []
    client = RayJobsClient(f"http://127.0.0.1:{free_port()}", attempts=4, backoff_s=0.01, sleep=sleeps.append)
    with pytest.raises(LauncherError, match=r"unreachable after 4 attempts"):
        client.submit({"submission_id": "x", "entrypoint": "true"})
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff, then give up
    launcher = RayLauncher(attempts=2, backoff_s=0.01)
    with pytest.raises(LauncherError, match=r"127\.0\.0\.1"):
        launcher.start(spec_for(tmp_path, "1", tiny_config(f"http://127.0.0.1:{free_port()}")))


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


@pytest.mark.ray
@pytest.mark.slow
def test_fipo_train_job_reports_to_control_plane_and_second_job_is_cancelled(ray_head: str, tmp_path: Path) -> None:
    launcher = RayLauncher(attempts=3, backoff_s=0.2)
    with IngestServer() as ingest:
        spec = spec_for(tmp_path, "101", tiny_config(ray_head), server_url=ingest.url)
        handle = launcher.start(spec)
        assert handle == f"{ray_head}/api/jobs/fipo-run-101"
        assert launcher.start(spec) == handle  # a retried submission is idempotent

        # A second, long job that we cancel while it runs.
        long_spec = spec_for(tmp_path, "102", tiny_config(ray_head, **{"trainer.total_steps": 10_000}))
        long_handle = launcher.start(long_spec)
        assert wait_for(launcher, long_handle, {"running", "failed"}, 60).state == "running"
        stopped = launcher.cancel(long_handle, grace_s=30)
        assert stopped.state == "stopped", stopped
        assert launcher.poll(long_handle).state == "stopped"

        final = wait_for(launcher, handle, {"succeeded", "failed", "stopped"}, 150)
        text, offset = launcher.read_log(handle, spec.log_path)
        assert final.state == "succeeded", f"{final}\n{text[-3000:]}"
        assert offset == len(text.encode()) and spec.log_path.read_text() == text
        assert launcher.read_log(handle, spec.log_path, offset) == ("", offset)

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(e["type"] == "status" and e.get("state") == "succeeded"
                                                       for e in ingest.of("101")):
            time.sleep(0.3)
        events = ingest.of("101")
    types = {e["type"] for e in events}
    assert {"metric", "status"} <= types, events[:5]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # in order, exactly once
    assert any(e["type"] == "status" and e.get("state") == "succeeded" for e in events)


PROBE = '''
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


@pytest.mark.ray
@pytest.mark.slow
def test_setup_hook_swaps_the_loss_inside_a_ray_worker(ray_head: str, tmp_path: Path) -> None:
    """A job with the launcher's runtime env hook: the worker's OpenRLHF PolicyLoss is ours, configured
    from $FIPO_CONFIG_JSON (here the 7B preset: safety threshold 3)."""
    from tests.engine.test_openrlhf_wheel import extract, standin_site
    from worker.launchers.ray import SETUP_HOOK

    site = standin_site(extract(tmp_path / "wheel"), tmp_path / "site")
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = job_env(PYTHONPATH=f"{site}:{REPO}", FIPO_CONFIG_JSON=preset("fipo-7b").model_dump_json())
    client = RayJobsClient(ray_head)
    sub_id = client.submit({"entrypoint": f"{sys.executable} {script}", "submission_id": "fipo-hook-probe",
                            "runtime_env": {"env_vars": env, "worker_process_setup_hook": SETUP_HOOK}})
    launcher = RayLauncher()
    final = wait_for(launcher, job_url(ray_head, sub_id), {"succeeded", "failed", "stopped"}, 120)
    logs = client.logs(sub_id)
    assert final.state == "succeeded", logs[-3000:]
    result = json.loads(logs.split("PROBE ", 1)[1].splitlines()[0])
    assert result == {"models": "FipoPolicyLoss", "ppo_actor": "FipoPolicyLoss", "safety": 3.0, "equal": True,
                      "fipo_metrics": result["fipo_metrics"]}
    assert result["fipo_metrics"] > 10
