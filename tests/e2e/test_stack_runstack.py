"""``make run``'s stack in the embedded mode (no PostgreSQL, no Redis), started and stopped by a test.

``manage.py runstack --demo`` must: come up on SQLite with the SQLite Celery broker, print the
credentials, launch the cot-demo and cpu-demo runs whose trainers report over HTTP, and on SIGINT (Ctrl-C) stop
the training job, the web server, the worker and beat, leaving no process behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.worker.stack import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Output:
    """Collects a process's output lines in the background so the test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float, proc: subprocess.Popen) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            match = re.search(pattern, self.text())
            if match:
                return match
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in the output (exit {proc.poll()}):\n{self.text()[-6000:]}")
            time.sleep(0.2)


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_runstack_demo_runs_embedded_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "FIPO_SERVER_URL")}
    env.update({"FIPO_VAR_DIR": str(tmp_path / "var"), "DJANGO_ENV": "development", "PYTHONUNBUFFERED": "1",
                "CELERY_TASK_ALWAYS_EAGER": "0", "FIPO_CANCEL_GRACE_S": "10"})
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--demo", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    out = Output(proc.stdout)
    tree: list[psutil.Process] = []
    try:
        out.wait_for(r"database sqlite3, broker sqla\+sqlite, channel layer InMemoryChannelLayer", 60, proc)
        out.wait_for(r"log in as\s+demo / demo", 120, proc)
        launched = r"demo run (\d+) launched: http://127\.0\.0\.1:\d+/runs/\d+/\s+\({}: "
        run_id = int(out.wait_for(launched.format("cot-demo"), 60, proc).group(1))
        cpu_run_id = int(out.wait_for(launched.format("cpu-demo"), 60, proc).group(1))
        for name in ("web", "worker", "beat"):  # each child's output, prefixed (the worker may print later)
            out.wait_for(rf"(?m)^{name}\s+\| ", 60, proc)

        # The demo run trains and reports through the HTTP endpoint; read it back as the demo user would.
        base = f"http://127.0.0.1:{port}/api/v1"
        key = httpx.post(f"{base}/auth/token", json={"username": "demo", "password": "demo"}).json()["key"]
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {key}"}, timeout=30)
        deadline = time.monotonic() + 150
        while True:
            run = api.get(f"/runs/{run_id}/").json()
            if run["status"] == "running":  # its first event arrived through the HTTP endpoint
                break
            assert run["status"] in {"queued", "starting", "running"}, run
            assert time.monotonic() < deadline, f"demo run never reported: {run}\n{out.text()[-4000:]}"
            time.sleep(0.5)
        assert run["preset"] == "cot-demo"
        assert api.get(f"/runs/{cpu_run_id}/").json()["preset"] == "cpu-demo"

        tree = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(p.cmdline()) for p in tree if alive(p)]
        assert any("daphne" in c for c in cmdlines) and any(" beat " in c for c in cmdlines)
        assert any("fipo_engine.cli train" in c for c in cmdlines), cmdlines  # the trainer itself

        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        assert proc.wait(timeout=90) == 0, out.text()[-4000:]
    finally:
        # Never leave a trainer behind, even when an assertion failed before the stack was stopped:
        # the training job leads its own session, so killing runstack's group would not reach it.
        if proc.poll() is None:
            tree = tree or psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for p in tree:
            if alive(p):
                p.kill()

    text = out.text()
    assert f"cancelled run {run_id}" in text and f"cancelled run {cpu_run_id}" in text and "runstack: stopped" in text
    left = [f"{p.pid} {p.name()}" for p in tree if alive(p)]
    assert not left, f"processes outlived the stack: {left}"
    # The trainer was stopped with SIGTERM and exited through its own handler (exit code 130).
    (workdir,) = (tmp_path / "var" / "runs").glob(f"{run_id}-*")  # <id>-<uid12>: unique to the run
    assert (workdir / "exit_code").read_text().strip() == "130"
