"""Chaos scenarios against a live stack (``tests/worker/stack.py``): one fault each, measured.

Each scenario launches a real ``fipo train`` run (cpu-demo cut to seconds) through the API, injects
one fault, and checks the outcome against the run directory's own ``events.jsonl`` (the ground
truth: every event the trainer produced) and what the API and the websocket serve. The fast ones
run in the test suite (``tests/worker/test_chaos.py``); all of them, with longer faults, in
``bench/chaos.py``, which prints the table of ``docs/operations.md``.

"lost" counts spool facts the server does not show (a metric point, a sample); "duplicated" counts
facts shown twice (a step twice in a series, a (step, index) sample twice, more stream items of a
type than the spool has events of it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from websockets.sync.client import connect

from tests.worker.stack import ROOT, LiveStack
from worker.launchers.local import LocalHandle

FINAL = {"succeeded", "failed", "cancelled"}
VOLATILE = ("timing/", "perf/")  # wall-clock metrics: a re-run step legitimately differs there

# Checkpoint every step and log one sample per step: the seam of a resume is then one step wide.
CHAOS_OVERRIDES: dict[str, Any] = {"trainer.save_every": 1, "trainer.keep_checkpoints": 3, "trainer.dynamic_sampling": False,
                                   "trainer.log_samples": 1}


@dataclass
class Outcome:
    """One fault's row of the chaos table."""

    fault: str
    expected: str
    measured: str = ""
    recovery_s: float | None = None
    lost: int | None = None
    duplicated: int | None = None
    ok: bool = False
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ processes
def kill_child(stack: LiveStack, name: str) -> list[str]:
    """SIGKILL a stack child's whole process group (web, worker, beat); returns its argv to restart it."""
    child = stack.supervisor.children.pop(name)
    os.killpg(child.pid, signal.SIGKILL)
    child.process.wait(timeout=10)
    child.reader.join(timeout=2)
    return child.argv


def start_child(stack: LiveStack, name: str, argv: list[str]) -> None:
    stack.supervisor.start(name, argv, env=stack.env, cwd=ROOT)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> float:
    """Seconds until ``predicate()`` is truthy; AssertionError naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
    return time.monotonic() - started


def job_processes(handle: str) -> list[psutil.Process]:
    try:
        wrapper = psutil.Process(LocalHandle.parse(handle).pid)
        return [wrapper, *wrapper.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


# ---------------------------------------------------------------------------------- ground truth
def workdir_of(detail: dict[str, Any]) -> Path:
    return LocalHandle.parse(detail["handle"]).workdir


def spool_events(workdir: Path) -> list[dict[str, Any]]:
    """The run's events.jsonl (complete lines), read without opening it for writing."""
    try:
        raw = (workdir / "events.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in raw.split(b"\n") if line.strip()]


def spool_acked(workdir: Path) -> int:
    try:
        return int((workdir / "events.acked").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def newest_checkpoint_on_disk(workdir: Path) -> int | None:
    """Step of the newest complete checkpoint in the run directory (what ``--resume`` loads)."""
    done = sorted(p.name for p in (workdir / "checkpoints").glob("step_*") if (p / "trainer_state.json").is_file())
    return int(done[-1].removeprefix("step_")) if done else None


def max_step(events: list[dict[str, Any]]) -> int:
    return max((e["step"] for e in events if e["type"] == "metric"), default=-1)


def stream_items(stack: LiveStack, run_id: int, upto: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Every stream item of the run up to position ``upto``, read over the real websocket."""
    url = stack.base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/?after=0"
    items: list[dict[str, Any]] = []
    with connect(url, origin=stack.base_url, open_timeout=30,
                 additional_headers={"Cookie": f"sessionid={stack.users['alice']['session']}"}) as ws:
        deadline = time.monotonic() + timeout_s
        while (not items or items[-1]["pos"] < upto) and time.monotonic() < deadline:
            items.append(json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return items


def store_check(stack: LiveStack, run_id: int, events: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """(lost, duplicated, notes) of the run's stored data against its spool."""
    api, notes = stack.api(), []
    lost = duplicated = 0
    # Metric points: the last value the spool holds for each (key, step) must be stored exactly once.
    expected: dict[str, dict[int, Any]] = {}
    for e in events:
        if e["type"] == "metric":
            for key, value in e["values"].items():
                if value is not None:  # NaN travels as null: "no value", stored as no point
                    expected.setdefault(key, {})[e["step"]] = value
    keys = sorted(expected)
    for i in range(0, len(keys), 20):
        chunk = keys[i:i + 20]
        series = api.get(f"/runs/{run_id}/metrics", params={"keys": ",".join(chunk), "max_points": 20000}).json()
        for key in chunk:
            steps = series["series"].get(key, {}).get("step", [])
            values = dict(zip(steps, series["series"].get(key, {}).get("value", []), strict=False))
            duplicated += len(steps) - len(set(steps))
            missing = set(expected[key]) - set(steps)
            if missing:
                notes.append(f"{key}: {len(missing)} step(s) missing, e.g. {sorted(missing)[:3]} "
                             f"(spool value {expected[key][min(missing)]!r})")
            lost += len(missing)
            wrong = [s for s, v in expected[key].items() if s in values and v is not None and values[s] is not None
                     and abs(values[s] - v) > 1e-6 * max(1.0, abs(v))]
            if wrong:
                notes.append(f"{key}: stored value differs from the spool's last at steps {wrong[:5]}")
    # Samples: each (step, index) once.
    want = Counter((e["step"], e["index"]) for e in events if e["type"] == "sample")
    listing = api.get(f"/runs/{run_id}/samples/").json()
    have: Counter[tuple[int, int]] = Counter()
    for step in listing.get("steps", []):
        for s in api.get(f"/runs/{run_id}/samples/", params={"step": step}).json()["results"]:
            have[(s["step"], s["index"])] += 1
    lost += len(set(want) - set(have))
    duplicated += sum(n - 1 for n in have.values() if n > 1)
    # The stream: no more metric items than the spool has metric events (a re-sent event is stored once).
    detail = stack.run(run_id)
    items = stream_items(stack, run_id, detail["stream_pos"])
    spool_metrics = sum(1 for e in events if e["type"] == "metric")
    stream_metrics = sum(1 for it in items if it["type"] == "metric")
    if stream_metrics != spool_metrics:
        notes.append(f"stream has {stream_metrics} metric items, spool {spool_metrics} metric events")
    duplicated += max(0, stream_metrics - spool_metrics)
    lost += max(0, spool_metrics - stream_metrics)
    positions = [it["pos"] for it in items]
    if positions != sorted(set(positions)):
        notes.append("stream positions repeated or out of order")
        duplicated += len(positions) - len(set(positions))
    return lost, duplicated, notes


def wait_running_step(stack: LiveStack, run_id: int, step: int, timeout_s: float = 240.0,
                      checkpoint: bool = False) -> dict[str, Any]:
    """The run's detail once it is running and its trainer has written ``step`` (and, with
    ``checkpoint``, a complete checkpoint).

    The step is read from the run directory's spool, polled every 10 ms, not from the API: on a quiet
    machine the tiny model trains a step in ~30 ms, faster than the API's view of the run can be
    polled, and a fault meant for mid-run must not arrive after the last step (CI saw exactly that)."""
    box: dict[str, Any] = {}

    def running() -> bool:
        box["d"] = d = stack.run(run_id)
        if d["status"] in FINAL:
            raise AssertionError(f"run {run_id} ended early: {d['transitions']}\n{d['log_tail'][-2000:]}")
        return d["status"] == "running"

    wait_until(running, timeout_s, f"run {run_id} to run", interval_s=0.05)
    workdir = workdir_of(box["d"])

    def reached() -> bool:
        events = spool_events(workdir)
        if any(e["type"] == "status" and e.get("state") in FINAL for e in events):
            raise AssertionError(f"run {run_id} ended before step {step}: {events[-1]}")
        return max_step(events) >= step and (not checkpoint or newest_checkpoint_on_disk(workdir) is not None)

    wait_until(reached, timeout_s, f"run {run_id} to reach step {step}", interval_s=0.01)
    return box["d"]


# ------------------------------------------------------------------------------------- scenarios
def web_server_kill(stack: LiveStack, *, down_s: float, total_steps: int) -> Outcome:
    """SIGKILL the web server mid-run for ``down_s``, restart it: nothing lost or repeated, run succeeds."""
    out = Outcome(f"web server SIGKILLed for {down_s:.0f} s mid-run, then restarted",
                  "training never pauses; every step, sample, eval stored exactly once; run succeeded")
    run = stack.create_run("chaos: web kill", overrides={**CHAOS_OVERRIDES, "trainer.total_steps": total_steps})
    stack.launch(run["id"])
    detail = wait_running_step(stack, run["id"], 1)
    workdir = workdir_of(detail)
    argv = kill_child(stack, "web")
    step_at_kill = max_step(spool_events(workdir))
    time.sleep(down_s)
    events = spool_events(workdir)
    trained_while_down = max_step(events) - step_at_kill
    start_child(stack, "web", argv)
    stack.supervisor.wait_http(f"{stack.base_url}/admin/login/", child="web", timeout_s=90)
    back = time.monotonic()
    target = events[-1]["seq"] if events else 0  # everything written while the server was away
    wait_until(lambda: spool_acked(workdir) >= target, 120, "the trainer to deliver its backlog")
    out.recovery_s = time.monotonic() - back
    final = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=300)
    out.lost, out.duplicated, out.notes = store_check(stack, run["id"], spool_events(workdir))
    out.measured = (f"{trained_while_down} steps trained while the server was down; backlog delivered "
                    f"{out.recovery_s:.1f} s after it answered; run {final['status']}")
    out.ok = final["status"] == "succeeded" and trained_while_down > 0 and out.lost == 0 and out.duplicated == 0
    return out


def segments(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The spool cut where a trainer process started (its ``running`` status event)."""
    parts: list[list[dict[str, Any]]] = []
    for e in events:
        if (e["type"] == "status" and e.get("state") == "running") or not parts:
            parts.append([])
        parts[-1].append(e)
    return parts


def seam_check(events: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """(the step the second segment started at, differences at the seam) of a resumed run's spool:
    the re-run steps must repeat the first segment's samples (same data order) and metrics."""
    first, second = segments(events)[-2:]
    resumed_at = min(e["step"] for e in second if e["type"] == "metric")
    notes = []

    def by_step(part: list[dict[str, Any]], kind: str) -> dict[int, Any]:
        return {e["step"]: e for e in part if e["type"] == kind}

    for kind in ("sample", "metric"):
        a, b = by_step(first, kind), by_step(second, kind)
        for step in sorted(set(a) & set(b)):
            if kind == "sample" and a[step].get("prompt") != b[step].get("prompt"):
                notes.append(f"step {step}: a different prompt after the resume")
            if kind == "metric":
                va = {k: v for k, v in a[step]["values"].items() if not k.startswith(VOLATILE)}
                vb = {k: v for k, v in b[step]["values"].items() if not k.startswith(VOLATILE)}
                if va != vb:
                    notes.append(f"step {step}: metrics differ after the resume")
    return resumed_at, notes


def resume_run(stack: LiveStack, run_id: int) -> float:
    """POST resume/ and return the seconds until the run is running again."""
    response = stack.api().post(f"/runs/{run_id}/resume/")
    assert response.status_code == 202, response.text
    return wait_until(lambda: stack.run(run_id)["status"] == "running", 240, f"run {run_id} to run again")


def trainer_kill(stack: LiveStack, *, total_steps: int, heartbeat_s: float) -> Outcome:
    """SIGKILL the trainer: lost within the heartbeat window; Resume continues it without a seam."""
    out = Outcome("trainer SIGKILLed, then Resume on the run page",
                  f"lost within the heartbeat window ({heartbeat_s:.0f} s here); Resume continues with the same "
                  "step numbers and data order; no duplicated points at the seam")
    run = stack.create_run("chaos: trainer kill", overrides={**CHAOS_OVERRIDES, "trainer.total_steps": total_steps})
    stack.launch(run["id"])
    detail = wait_running_step(stack, run["id"], 3, checkpoint=True)
    workdir = workdir_of(detail)
    processes = job_processes(detail["handle"])
    os.killpg(processes[0].pid, signal.SIGKILL)  # the OOM killer's way
    killed = time.monotonic()
    steps_before = max_step(spool_events(workdir))
    wait_until(lambda: stack.run(run["id"])["status"] == "lost", heartbeat_s + 60, "the run to become lost")
    to_lost = time.monotonic() - killed
    # The newest complete checkpoint on disk: its report may have died with the trainer, so the
    # API's list can end one checkpoint earlier.
    checkpoint = newest_checkpoint_on_disk(workdir)
    to_running = resume_run(stack, run["id"])
    final = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=300)
    events = spool_events(workdir)
    out.lost, out.duplicated, out.notes = store_check(stack, run["id"], events)
    resumed_at, seam_notes = seam_check(events)
    out.notes += seam_notes
    out.recovery_s = to_lost
    series = stack.api().get(f"/runs/{run['id']}/metrics", params={"keys": "reward/mean"}).json()["series"]
    steps = series["reward/mean"]["step"]
    out.measured = (f"lost {to_lost:.1f} s after the kill (trained to step {steps_before}, newest checkpoint "
                    f"{checkpoint}); Resume -> running in {to_running:.1f} s, continued at step {resumed_at}; "
                    f"run {final['status']}, steps {steps[0]}..{steps[-1]} each once")
    out.ok = (final["status"] == "succeeded" and resumed_at == checkpoint + 1 and steps == list(range(1, total_steps + 1))
              and out.lost == 0 and out.duplicated == 0 and not seam_notes)
    return out


def cancel_mid_run(stack: LiveStack, *, total_steps: int, grace_s: float, label: str = "",
                   overrides: dict[str, Any] | None = None) -> Outcome:
    """Cancel a running job: gone within the grace period, ``cancelled``, and its checkpoint resumes."""
    out = Outcome(f"cancel{(' ' + label) if label else ''}",
                  f"process gone within the grace period ({grace_s:.0f} s); cancelled; its checkpoint resumes")
    run = stack.create_run("chaos: cancel", overrides={**CHAOS_OVERRIDES, **(overrides or {}),
                                                       "trainer.total_steps": total_steps})
    stack.launch(run["id"])
    detail = wait_running_step(stack, run["id"], 2, checkpoint=True)
    processes = job_processes(detail["handle"])
    asked = time.monotonic()
    response = stack.api().post(f"/runs/{run['id']}/cancel")
    assert response.status_code == 202, response.text
    final = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=grace_s + 60)
    to_cancelled = time.monotonic() - asked
    left = alive(processes)
    reason = final["transitions"][-1]["reason"]
    checkpoint = newest_checkpoint_on_disk(workdir_of(final)) if final["checkpoints"] else None
    out.recovery_s = to_cancelled
    ok = final["status"] == "cancelled" and not left and checkpoint is not None
    measured = f"cancelled {to_cancelled:.1f} s after the request ({reason}); {len(left)} process(es) left"
    if ok:
        to_running = resume_run(stack, run["id"])
        resumed = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=300)
        events = spool_events(workdir_of(resumed))
        out.lost, out.duplicated, out.notes = store_check(stack, run["id"], events)
        resumed_at, seam_notes = seam_check(events)
        out.notes += seam_notes
        measured += (f"; Resume from step {checkpoint} -> running in {to_running:.1f} s, continued at step "
                     f"{resumed_at}, run {resumed['status']}")
        ok = (resumed["status"] == "succeeded" and resumed_at == checkpoint + 1 and out.lost == 0
              and out.duplicated == 0 and not seam_notes)
    out.measured, out.ok = measured, ok
    return out


def worker_kill_while_launching(stack: LiveStack, *, heartbeat_s: float, total_steps: int) -> Outcome:
    """SIGKILL the Celery worker as soon as the run is ``starting``; restart it 5 s later."""
    out = Outcome("Celery worker SIGKILLed while it launches a run",
                  "the run does not stay starting: it runs, or is retried/failed with a reason, in bounded time")
    run = stack.create_run("chaos: worker kill", overrides={**CHAOS_OVERRIDES, "trainer.total_steps": total_steps})
    stack.launch(run["id"])
    wait_until(lambda: stack.run(run["id"])["status"] != "queued", 120, "the launch task to start", 0.02)
    argv = kill_child(stack, "worker")
    killed = time.monotonic()
    at_kill = stack.run(run["id"])
    time.sleep(5)
    start_child(stack, "worker", argv)
    wait_until(lambda: stack.run(run["id"])["status"] not in {"queued", "starting"}, heartbeat_s + 120,
               "the run to leave starting")
    out.recovery_s = time.monotonic() - killed
    final = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=heartbeat_s + 300)
    path = " -> ".join(t["to"] for t in final["transitions"])
    out.measured = (f"killed while {at_kill['status']} (handle {'recorded' if at_kill['handle'] else 'not recorded'}); "
                    f"left starting after {out.recovery_s:.1f} s; ended {final['status']} ({path}; "
                    f"{final['transitions'][-1]['reason'][:120]})")
    out.ok = final["status"] in FINAL | {"lost"} and final["status"] != "starting"
    return out


def disk_full(stack: LiveStack, runs_dir: Path, *, total_steps: int, heartbeat_s: float) -> Outcome:
    """Fill the (small tmpfs) runs directory mid-run: failed with the reason, no torn newest checkpoint."""
    out = Outcome("disk full in the run directory (tmpfs)",
                  "the trainer stops with a clear error; the run is failed with that reason; "
                  "no corrupt checkpoint left as newest")
    run = stack.create_run("chaos: disk full", overrides={**CHAOS_OVERRIDES, "trainer.total_steps": total_steps})
    stack.launch(run["id"])
    detail = wait_running_step(stack, run["id"], 1)
    workdir = workdir_of(detail)
    filler = runs_dir / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)  # until ENOSPC
    # Leave less than one checkpoint (~220 KB for this model) free: the next checkpoint write is the
    # one that hits the wall, as when checkpoints fill a volume.
    os.truncate(filler, max(0, filler.stat().st_size - 96 * 1024))
    filled = time.monotonic()
    final = stack.wait_status(run["id"], FINAL, timeout_s=heartbeat_s + 120)
    out.recovery_s = time.monotonic() - filled
    reason = final["transitions"][-1]["reason"]
    from fipo_engine.trainer.checkpoint import latest_checkpoint

    newest = latest_checkpoint(workdir / "checkpoints")
    intact = newest is None or all((newest / name).exists() for name in ("model", "optimizer.pt", "rng.pt",
                                                                          "trainer_state.json"))
    filler.unlink(missing_ok=True)
    out.measured = (f"{final['status']} {out.recovery_s:.1f} s after the disk filled: \"{reason[:160]}\"; newest "
                    f"checkpoint {newest.name if newest else None} {'complete' if intact else 'INCOMPLETE'}")
    out.ok = final["status"] == "failed" and "No space left" in reason and intact
    return out


def access_log_count(stack: LiveStack, needle: str, since_line: int) -> int:
    """How many web access-log lines after ``since_line`` contain ``needle``."""
    lines = stack.log_path.read_text(errors="replace").splitlines()[since_line:]
    return sum(1 for line in lines if line.startswith("web") and needle in line)


def log_lines(stack: LiveStack) -> int:
    return len(stack.log_path.read_text(errors="replace").splitlines())


def service_restart(stack: LiveStack, *, name: str, stop: Callable[[], None], start: Callable[[], None],
                    down_s: float, total_steps: int, viewers: int = 3) -> Outcome:
    """Stop a backing service (Redis or PostgreSQL) for ``down_s`` mid-run with run pages open.

    The pages are plain websocket clients that reconnect like live.js; afterwards each must hold the
    run's whole stream exactly once and in order (compared with a fresh read), and the store must
    hold every spool fact once."""
    from tests.worker.viewer import Viewer

    expected = {"Redis": "open run pages reconnect and catch up with no gap and no duplicate",
                "PostgreSQL": "ingest answers 503 while it is down; the client retries; nothing lost"}[name]
    out = Outcome(f"{name} restarted ({down_s:.0f} s down) mid-run", expected)
    run = stack.create_run(f"chaos: {name} restart",
                           overrides={**CHAOS_OVERRIDES, "trainer.total_steps": total_steps})
    pages = [Viewer(stack.base_url, run["id"], stack.users["alice"]["session"]) for _ in range(viewers)]
    for page in pages:
        page.start()
    stack.launch(run["id"])
    detail = wait_running_step(stack, run["id"], 1)
    workdir = workdir_of(detail)
    mark = log_lines(stack)
    stop()
    time.sleep(down_s)
    start()
    back = time.monotonic()
    target = spool_events(workdir)[-1]["seq"]
    wait_until(lambda: spool_acked(workdir) >= target, 180, "the trainer to deliver its backlog")
    delivered_s = time.monotonic() - back
    final = stack.wait_status(run["id"], FINAL | {"lost"}, timeout_s=300)
    end = final["stream_pos"]
    caught = [page.wait_pos(end, 60) for page in pages]
    caught_s = time.monotonic() - back
    for page in pages:
        page.stop()
    truth = stream_items(stack, run["id"], end)
    page_ok = all(page.items == truth and page.gaps == 0 for page in pages)
    out.lost, out.duplicated, out.notes = store_check(stack, run["id"], spool_events(workdir))
    out.notes += [f"page {i}: {p.gaps} gaps, {p.repeats} repeats dropped, {len(p.items)}/{len(truth)} items, "
                  f"{p.reconnects} reconnects" for i, p in enumerate(pages) if not (p.items == truth and p.gaps == 0)]
    answered_503 = access_log_count(stack, '/events" 503', mark)
    answered_5xx = sum(access_log_count(stack, f'/events" {code}', mark) for code in (500, 502, 503, 504))
    out.recovery_s = caught_s
    out.measured = (f"backlog delivered {delivered_s:.1f} s after {name} was back, every page caught up after "
                    f"{caught_s:.1f} s ({sum(p.reconnects for p in pages)} reconnects over {viewers} pages, "
                    f"pages == stream: {page_ok}); ingest answered 503 x{answered_503} (5xx x{answered_5xx}); "
                    f"run {final['status']}")
    out.ok = (final["status"] == "succeeded" and all(caught) and page_ok and out.lost == 0 and out.duplicated == 0
              and (name != "PostgreSQL" or answered_5xx == answered_503)
              # Redis is the cache and the channel layer, not the store: ingest never fails for it
              and (name != "Redis" or answered_5xx == 0))
    return out
