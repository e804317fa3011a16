"""Eval jobs: run ``fipo eval`` on a run's checkpoint from a Celery worker, then record the result.

Why a subprocess and not an import: the worker stays free of torch and of model memory, the job
runs exactly the command a user would run (``fipo eval --model <checkpoint> ...``), and a crash or
an out-of-memory kill fails the job, not the worker. The result JSON (``--out``) becomes one
``eval`` item in the run's stream (what the run page shows live) and the run's leaderboard entry
for that step (``services.entry_record_eval``). The run may already be finished: results are
written through the services, not through the run-token ingest endpoint.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from webapp.accounts.models import User
from webapp.common.errors import Conflict, ValidationFailed
from webapp.leaderboards.services import clean_benchmark, entry_record_eval
from webapp.runs.models import Checkpoint, Run

logger = logging.getLogger(__name__)

# Options a user may set for an eval job, with their type and the fipo eval flag.
_OPTIONS: dict[str, tuple[type, str]] = {
    "k": (int, "--k"),
    "temperature": (float, "--temperature"),
    "top_p": (float, "--top-p"),
    "max_new_tokens": (int, "--max-new-tokens"),
    "limit": (int, "--limit"),
    "seed": (int, "--seed"),
}


def clean_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The eval options of a request (unknown keys ignored), type-checked and positive."""
    out: dict[str, Any] = {}
    errors = []
    for key, (kind, _) in _OPTIONS.items():
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
            errors.append({"path": key, "message": f"must be {'an integer' if kind is int else 'a number'}"})
        elif value <= 0 and key != "seed":
            errors.append({"path": key, "message": "must be positive"})
        else:
            out[key] = kind(value)
    if "top_p" in out and out["top_p"] > 1:
        errors.append({"path": "top_p", "message": "must be at most 1"})
    if errors:
        raise ValidationFailed("invalid eval options", fields=errors)
    return out


def _checkpoint(run: Run, step: int | None) -> Checkpoint:
    qs = Checkpoint.objects.filter(run=run)
    checkpoint = (qs.filter(step=step) if step is not None else qs).order_by("-step", "-id").first()
    if checkpoint is None:
        which = f"at step {step}" if step is not None else "yet"
        raise Conflict(f"run {run.pk} has no checkpoint {which}")
    return checkpoint


def checkpoint_path(uri: str) -> Path:
    """A checkpoint's local directory from its ``uri`` (a path or ``file://`` URL)."""
    return Path(uri.removeprefix("file://"))


def eval_job_queue(*, user: User, run_id: Any, benchmark: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check access and inputs, then queue ``run_eval`` after the commit. Returns what was queued."""
    from webapp.leaderboards.tasks import run_eval
    from webapp.runs.selectors import access_run_write, run_get

    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise ValidationFailed("run must be a run id", fields=[{"path": "run", "message": "required"}])
    run = run_get(user=user, run_id=run_id)
    access_run_write(user=user, run=run)
    clean_benchmark(benchmark)  # validates; the command gets the name or path as given
    bench = benchmark.strip()
    step = options.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValidationFailed("step must be an integer", fields=[{"path": "step", "message": "invalid"}])
    checkpoint = _checkpoint(run, step)
    opts = clean_options(options)
    transaction.on_commit(lambda: run_eval.delay(run.pk, bench, checkpoint.step, opts))
    return {"run": run.pk, "benchmark": bench, "step": checkpoint.step, "options": opts, "queued": True}


def eval_command(*, model: Path, benchmark: str, step: int, options: Mapping[str, Any], out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "fipo_engine.cli", "eval", "--model", str(model), "--benchmark", benchmark,
           "--step", str(step), "--json", "--out", str(out)]
    for key, value in options.items():
        cmd += [_OPTIONS[key][1], str(value)]
    return cmd


def _run_defaults(run: Run) -> dict[str, Any]:
    """Defaults from the run's own config: its response length limit and eval sampling settings."""
    rollout = run.config.get("rollout", {}) if isinstance(run.config, dict) else {}
    trainer = run.config.get("trainer", {}) if isinstance(run.config, dict) else {}
    defaults = {"max_new_tokens": rollout.get("max_new_tokens"), "temperature": trainer.get("eval_temperature"),
                "top_p": trainer.get("eval_top_p")}
    return {k: v for k, v in defaults.items() if v is not None}


def eval_job_run(*, run_id: int, benchmark: str, step: int, options: Mapping[str, Any]) -> int | None:
    """The ``run_eval`` task: run ``fipo eval`` on the checkpoint, record the ``eval`` item and entry.

    Returns the entry id, or None when the run or checkpoint is gone or the command failed (the
    failure is written to the run's stream as a ``log`` item so the user sees why).
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return None
    checkpoint = Checkpoint.objects.filter(run=run, step=step).order_by("-id").first()
    if checkpoint is None:
        return None
    workdir = Path(settings.FIPO_RUNS_DIR) / str(run_id) / "evals"
    workdir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in benchmark)[:60]
    out, log_path = workdir / f"{safe}-step{step}.json", workdir / f"{safe}-step{step}.log"
    opts = {**_run_defaults(run), **options}
    cmd = eval_command(model=checkpoint_path(checkpoint.uri), benchmark=benchmark, step=step, options=opts, out=out)
    timeout = getattr(settings, "FIPO_EVAL_TIMEOUT_S", 6 * 3600)
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log, timeout=timeout,
                                  cwd=settings.BASE_DIR, check=False)
        failed = proc.returncode != 0 or not out.is_file()
        reason = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        failed, reason = True, f"timed out after {timeout} s"
    if failed:
        tail = log_path.read_text(errors="replace")[-1500:] if log_path.is_file() else ""
        logger.warning("eval of run %s step %s on %s failed: %s", run_id, step, benchmark, reason)
        _append_stream(run_id, "log", {"text": f"eval on {benchmark} (step {step}) failed: {reason}\n{tail}"})
        return None
    result = json.loads(out.read_text())
    payload = {k: v for k, v in result.items() if k != "problems"}
    payload["step"] = step
    with transaction.atomic():
        entry = entry_record_eval(run=run, data=payload)
        _append_stream(run_id, "eval", payload)
    return entry.pk


def _append_stream(run_id: int, type_: str, data: dict[str, Any]) -> None:
    """One item in the run's stream, under the run's row lock, with the websocket notice after commit."""
    from webapp.runs.services import run_lock
    from webapp.tracking.stream import stream_append

    with transaction.atomic():
        run = run_lock(run_id)
        stream_append(run=run, items=[(type_, data, None)])
        run.save(update_fields=["stream_pos", "updated_at"])

