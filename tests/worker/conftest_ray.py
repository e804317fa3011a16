"""A real local Ray head for the Ray tests.

The head listens on GCS port 6380 (6379 is Redis) with the dashboard (the Jobs REST API) on a free
port of 127.0.0.1. Start and stop take about 7 s each, so one head serves a whole test module.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.worker.stack import free_port

REPO = Path(__file__).resolve().parents[2]
GCS_PORT = 6380


def ray_cli() -> str:
    """The `ray` executable next to this interpreter, or skip when Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install -e '.[test]' brings it): no local Ray head")
    exe = Path(sys.executable).with_name("ray")
    found = str(exe) if exe.exists() else shutil.which("ray")
    if not found:
        pytest.skip("the `ray` command is not on PATH next to this interpreter")
    return found


def start_head() -> Iterator[str]:
    """Start a head, yield its dashboard URL, stop it (``ray stop``) afterwards."""
    exe = ray_cli()
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [exe, "start", "--head", "--port", str(GCS_PORT), "--num-cpus", "1", "--include-dashboard", "true",
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(port), "--disable-usage-stats"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if proc.returncode != 0:
            pytest.fail(f"ray start failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Ray dashboard at {url} did not come up within 60 s")
            time.sleep(0.5)
        yield url
    finally:
        subprocess.run([exe, "stop"], capture_output=True, timeout=120, env=env)


def job_env(**extra: str) -> dict[str, str]:
    """Runtime env vars that let a job on this machine use this checkout and this venv."""
    return {"FIPO_PYTHON": sys.executable, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1", **extra}
