"""Stopping `fipo train` (SIGTERM from the control plane's cancel): checkpoint at a safe point, resume exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import fipo_engine.trainer.phases as phases
from fipo_engine.tracking import Spool
from fipo_engine.trainer.loop import train
from fipo_engine.trainer.stop import StopRequest
from tests.engine.test_cli_train import REPO, _sets
from tests.engine.test_trainer import TINY_RUN, _stable, _weights, tiny_config


def _stop_on_call(monkeypatch: pytest.MonkeyPatch, name: str, call: int, stop: StopRequest) -> None:
    """Request the stop inside the ``call``-th call of ``phases.<name>`` (a deterministic point of the run)."""
    original = getattr(phases, name)
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            stop.request("SIGTERM")
        return original(*args, **kwargs)

    monkeypatch.setattr(phases, name, wrapped)


# score_responses call 3: step 3 has generated, nothing trained yet -> the step is abandoned, step 2 saved.
# policy_loss call 9: the first micro-batch of step 3 (4 per step) -> step 3 finishes, then it is saved.
@pytest.mark.parametrize(("where", "call", "saved"), [("score_responses", 3, 2), ("policy_loss", 9, 3)])
def test_a_stop_checkpoints_and_the_resumed_run_equals_a_straight_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str, call: int, saved: int) -> None:
    extra = {"trainer.save_every": 0}  # only the stop (and the last step) write checkpoints
    straight = train(tiny_config(**{"trainer.total_steps": 4}, **extra), tmp_path / "straight", progress=False)

    stop = StopRequest()
    with monkeypatch.context() as patch:
        _stop_on_call(patch, where, call, stop)
        first = train(tiny_config(**{"trainer.total_steps": 4}, **extra), tmp_path / "resumed", progress=False,
                      stop=stop)
    assert first.stopped == "SIGTERM" and first.final_step == saved
    assert first.last_checkpoint is not None and first.last_checkpoint.name == f"step_{saved:06d}"
    events = Spool(tmp_path / "resumed").events()
    assert not [e for e in events if e["type"] == "status" and e["state"] != "running"]
    assert events[-1]["type"] == "log" and "stopped by SIGTERM" in events[-1]["text"]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [saved]

    second = train(tiny_config(**{"trainer.total_steps": 4}, **extra), tmp_path / "resumed", resume=True,
                   progress=False)
    assert [h["step"] for h in first.history + second.history] == [1, 2, 3, 4]
    assert _stable(first.history + second.history) == _stable(straight.history)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_stop_during_the_warm_start_writes_nothing_and_a_resume_starts_over(tmp_path: Path) -> None:
    stop = StopRequest()
    stop.request()
    result = train(tiny_config(**{"trainer.total_steps": 1}), tmp_path, progress=False, stop=stop)
    assert result.stopped and result.last_checkpoint is None and result.final_step == 0
    assert not (tmp_path / "checkpoints").exists()


def _spool_lines(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return out


@pytest.mark.slow
def test_sigterm_to_a_real_fipo_train_checkpoints_exits_130_and_resumes(tmp_path: Path) -> None:
    from fipo_engine.cli import main

    run = tmp_path / "run"
    overrides = {**TINY_RUN, "trainer.total_steps": 10_000, "trainer.save_every": 0, "trainer.eval_every": 0}
    cmd = [sys.executable, "-m", "fipo_engine.cli", "train", "cpu-demo", "--out", str(run), *_sets(overrides),
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(e["type"] == "metric" and e["step"] >= 2 for e in _spool_lines(run)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.monotonic() - sent < 10, "slower than the control plane's default grace period"
    assert proc.returncode == 130, output[-3000:]
    assert "stopped by SIGTERM" in output

    events = Spool(run).events()
    assert [e["state"] for e in events if e["type"] == "status"] == ["running"]  # no final status
    last_step = max(e["step"] for e in events if e["type"] == "metric")
    checkpoints = [e for e in events if e["type"] == "checkpoint"]
    assert [e["step"] for e in checkpoints] == [last_step]  # every finished step is kept
    assert Path(checkpoints[0]["uri"]).name == f"step_{last_step:06d}"
    assert events[-1]["type"] == "log" and "stopped by SIGTERM" in events[-1]["text"]

    assert main(["train", "--resume", "--out", str(run), "--set", f"trainer.total_steps={last_step + 1}",
                 "--no-progress"]) == 0
    events = Spool(run).events()
    assert max(e["step"] for e in events if e["type"] == "metric") == last_step + 1
    assert events[-1]["type"] == "status" and events[-1]["state"] == "succeeded"
    assert (run / "checkpoints" / f"step_{last_step + 1:06d}").is_dir()
