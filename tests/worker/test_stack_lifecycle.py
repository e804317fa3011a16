"""The run lifecycle against a real stack: daphne, a Celery worker and beat as processes, a real ``fipo train``.

Against PostgreSQL + Redis when ``DATABASE_URL``/``REDIS_URL`` are set, the embedded SQLite mode
otherwise (see ``tests/worker/stack.py``). The test only uses what users and trainers use: the
REST API with a personal token, the websocket with a session cookie, and the operating system's
view of the processes.

* a launched run trains, its events arrive over HTTP, it ends ``succeeded`` with its metrics stored,
  and a websocket client on the real ASGI server sees its status changes and metric points;
* cancelling a running job stops the trainer (SIGTERM: it exits through its own handler) and the run
  ends ``cancelled`` with no process left;
* a trainer killed outright (SIGKILL) goes silent; beat's reaper marks the run ``lost`` once the
  heartbeat timeout passes, and says the job is gone.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.worker.stack import LiveStack, live_stack
from worker.launchers import get_launcher
from worker.launchers.local import LocalHandle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("stack"), tag="main", FIPO_HEARTBEAT_TIMEOUT_S="120",
                    FIPO_CANCEL_GRACE_S="15") as s:
        yield s


class StreamRecorder:
    """A websocket client in a thread: records every stream item of one run until it ends."""

    def __init__(self, stack: LiveStack, run_id: int, user: str = "alice") -> None:
        url = stack.base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/?after=0"
        self.items: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.close_code: int | None = None
        self._ws = connect(url, origin=stack.base_url, open_timeout=30,
                           additional_headers={"Cookie": f"sessionid={stack.users[user]['session']}"})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for message in self._ws:
                item = json.loads(message)
                self.items.append(item)
                if item["type"] == "status" and item["data"]["status"] in {"succeeded", "failed", "cancelled"}:
                    break
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def stop(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        self._thread.join(timeout_s)
        self._ws.close()
        if self.error is not None:
            raise self.error
        return self.items


@pytest.fixture(scope="module")
def finished_run(stack: LiveStack) -> dict[str, Any]:
    """One tiny run launched through the API and watched over a websocket until it ends."""
    run = stack.create_run("lifecycle")
    assert run["status"] == "draft"
    recorder = StreamRecorder(stack, run["id"])
    stack.launch(run["id"])
    detail = stack.wait_status(run["id"], {"succeeded", "failed", "cancelled", "lost"}, timeout_s=240)
    items = recorder.stop()
    return {"detail": detail, "items": items, "close_code": recorder.close_code, "stack": stack,
            "metrics": stack.api().get(f"/runs/{run['id']}/metrics").json()}


def test_a_launched_run_trains_and_succeeds_with_its_metrics_stored(stack: LiveStack, finished_run: dict) -> None:
    detail = finished_run["detail"]
    assert detail["status"] == "succeeded", f"{detail['transitions']}\n{detail['log_tail'][-3000:]}"
    path = [(t["from"], t["to"]) for t in detail["transitions"]]
    assert path == [(None, "draft"), ("draft", "queued"), ("queued", "starting"), ("starting", "running"),
                    ("running", "succeeded")]
    assert detail["last_step"] == 3  # trainer.total_steps of the tiny run
    assert detail["handle"].startswith("pid:") and detail["last_heartbeat"] is not None
    assert "fipo train" in detail["log_tail"] or "fipo_engine.cli train" in detail["log_tail"]

    keys = finished_run["metrics"]["keys"]
    assert "reward/mean" in keys, keys
    series = stack.api().get(f"/runs/{detail['id']}/metrics", params={"keys": "reward/mean"}).json()["series"]
    assert series["reward/mean"]["step"] == [1, 2, 3]
    assert all(isinstance(v, float) for v in series["reward/mean"]["value"])

    # The job really ends (the final status is sent just before the trainer exits): exit code 0.
    launcher, deadline = get_launcher("local"), time.monotonic() + 60
    while (job := launcher.poll(detail["handle"])).state == "running":
        assert time.monotonic() < deadline, "the trainer did not exit after reporting success"
        time.sleep(0.2)
    assert (job.state, job.exit_code) == ("succeeded", 0)
    assert (LocalHandle.parse(detail["handle"]).workdir / "exit_code").read_text().strip() == "0"


def test_the_websocket_on_the_real_server_streamed_statuses_and_metrics(finished_run: dict) -> None:
    items = finished_run["items"]
    positions = [item["pos"] for item in items]
    assert positions == sorted(set(positions)), "stream items out of order or repeated"
    statuses = [item["data"]["status"] for item in items if item["type"] == "status"]
    assert statuses == ["draft", "queued", "starting", "running", "succeeded"], (
        f"close code {finished_run['close_code']}; items {[(i['pos'], i['type']) for i in items]}\n"
        f"{finished_run['stack'].log_tail(60)}")
    metric_names: dict[int, set[str]] = {}
    for item in items:
        if item["type"] == "metric":
            metric_names.setdefault(item["data"]["step"], set()).update(item["data"]["values"])
    assert sorted(metric_names) == [1, 2, 3]
    assert all("reward/mean" in names for names in metric_names.values())


def test_another_teams_websocket_is_closed_with_4404_and_a_foreign_origin_refused(
        stack: LiveStack, finished_run: dict) -> None:
    """Through the real server: the close code arrives after the handshake, so browsers can read it."""
    recorder = StreamRecorder(stack, finished_run["detail"]["id"], user="bob")
    assert recorder.stop() == [] and recorder.close_code == 4404
    url = stack.base_url.replace("http://", "ws://") + f"/ws/runs/{finished_run['detail']['id']}/"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example",
                additional_headers={"Cookie": f"sessionid={stack.users['alice']['session']}"})
    assert refused.value.response.status_code == 403


def _job_processes(handle: str) -> list[psutil.Process]:
    wrapper = psutil.Process(LocalHandle.parse(handle).pid)
    return [wrapper, *wrapper.children(recursive=True)]


def test_cancel_stops_a_running_job_and_its_processes(stack: LiveStack) -> None:
    run = stack.create_run("cancel me", overrides={"trainer.total_steps": 100_000})
    stack.launch(run["id"])
    deadline = time.monotonic() + 180
    while (detail := stack.run(run["id"]))["last_step"] is None:  # in the training loop, handler installed
        assert detail["status"] in {"queued", "starting", "running"}, detail["transitions"]
        assert time.monotonic() < deadline, stack.log_tail()
        time.sleep(0.3)
    processes = _job_processes(detail["handle"])
    assert any("fipo_engine.cli" in " ".join(p.cmdline()) for p in processes)

    response = stack.api().post(f"/runs/{run['id']}/cancel")
    assert response.status_code == 202, response.text
    detail = stack.wait_status(run["id"], {"cancelled", "failed", "succeeded", "lost"}, timeout_s=60)
    assert detail["status"] == "cancelled", detail["transitions"]
    reason = detail["transitions"][-1]["reason"]
    assert "cancelled by alice" in reason and "job stopped" in reason
    # The trainer stopped through its SIGTERM handler (exit 130), within the grace period.
    assert "exit code 130" in reason, reason
    for proc in processes:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE, proc
    # A second cancel is a conflict, not a crash.
    assert stack.api().post(f"/runs/{run['id']}/cancel").status_code == 409


@pytest.fixture(scope="module")
def reaping_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """A stack whose heartbeat timeout is seconds, with beat reaping every second."""
    with live_stack(tmp_path_factory.mktemp("reaping"), tag="reap", FIPO_HEARTBEAT_TIMEOUT_S="6",
                    FIPO_REAP_INTERVAL_S="1") as s:
        yield s


def test_a_killed_job_goes_lost_after_the_heartbeat_timeout(reaping_stack: LiveStack) -> None:
    stack = reaping_stack
    run = stack.create_run("killed", overrides={"trainer.total_steps": 100_000})
    stack.launch(run["id"])
    deadline = time.monotonic() + 180
    # (On a slow machine the reaper may flag the starting job lost before its first event; its next
    # event brings it back to running. Wait for a running run that has reported a step.)
    while not ((detail := stack.run(run["id"]))["status"] == "running" and detail["last_step"] is not None):
        assert detail["status"] in {"queued", "starting", "running", "lost"}, detail["transitions"]
        assert time.monotonic() < deadline, stack.log_tail()
        time.sleep(0.3)
    processes = _job_processes(detail["handle"])
    os.killpg(processes[0].pid, signal.SIGKILL)  # the OOM killer's way: no handler runs, nothing is sent

    deadline = time.monotonic() + 60
    while True:
        detail = stack.run(run["id"])
        last = detail["transitions"][-1]
        if detail["status"] == "lost" and "job is unknown" in last["reason"]:
            break
        assert detail["status"] in {"running", "lost"}, detail["transitions"]
        assert time.monotonic() < deadline, f"{detail['transitions']}\n{stack.log_tail()}"
        time.sleep(0.5)
    assert last["from"] == "running" and last["reason"].startswith("no heartbeat for ")
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert not (Path(LocalHandle.parse(detail["handle"]).workdir) / "exit_code").exists()
