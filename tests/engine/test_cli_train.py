"""`fipo train` end to end: a real subprocess streaming to a real local HTTP ingest server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fipo_engine.tracking import Spool
from tests.engine.test_tracking import IngestServer, free_port
from tests.engine.test_trainer import TINY_RUN

REPO = Path(__file__).resolve().parents[2]


def _sets(overrides: dict) -> list[str]:
    out = []
    for key, value in overrides.items():
        out += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return out


@pytest.mark.slow
def test_fipo_train_subprocess_streams_every_event_to_the_server(tmp_path: Path) -> None:
    port = free_port()
    overrides = {**TINY_RUN, "trainer.dynamic_sampling": True, "trainer.total_steps": 3, "trainer.save_every": 2}
    cmd = [sys.executable, "-m", "fipo_engine.cli", "train", "cpu-demo", "--out", str(tmp_path / "run"),
           *_sets(overrides), "--no-progress", "--server", f"http://127.0.0.1:{port}", "--run-id", "7"]
    env = {**os.environ, "FIPO_RUN_TOKEN": "unused-when-flags-given"}
    with IngestServer(port) as server:
        proc = subprocess.run([*cmd, "--token", "tok"], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    run = tmp_path / "run"
    spool = Spool(run).events()
    assert [e["seq"] for e in server.received] == [e["seq"] for e in spool]  # all of it, once, in order
    assert Spool(run).read_ack() == spool[-1]["seq"]
    statuses = [(e["state"]) for e in server.received if e["type"] == "status"]
    assert statuses == ["running", "succeeded"]
    steps = sorted({e["step"] for e in spool if e["type"] == "metric"})
    assert steps == [0, 1, 2, 3]
    checkpoints = [e["step"] for e in spool if e["type"] == "checkpoint"]
    assert checkpoints == [2, 3]
    assert json.loads((run / "config.json").read_text())["trainer"]["total_steps"] == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000002", "step_000003"]


def test_a_training_failure_exits_1_with_a_failed_status(tmp_path: Path) -> None:
    from fipo_engine.cli import main

    code = main(["train", "cpu-demo", "--out", str(tmp_path), "--no-progress",
                 "--set", "data.source=file", "--set", f"data.path={tmp_path / 'missing.jsonl'}"])
    assert code == 1
    last = Spool(tmp_path).events()[-1]
    assert last["type"] == "status" and last["state"] == "failed"
    assert "missing.jsonl" in last["message"]


def test_resume_without_config_reads_the_run_directory(tmp_path: Path) -> None:
    from fipo_engine.cli import main

    base = [*_sets({**TINY_RUN, "trainer.total_steps": 1, "trainer.eval_every": 0}), "--no-progress"]
    assert main(["train", "cpu-demo", "--out", str(tmp_path), *base]) == 0
    assert main(["train", "--resume", "--out", str(tmp_path), "--set", "trainer.total_steps=2",
                 "--no-progress"]) == 0
    metric_steps = [e["step"] for e in Spool(tmp_path).events() if e["type"] == "metric"]
    assert metric_steps == [0, 1, 2]  # the warm start's metric at 0, then steps 1 and 2, none repeated
