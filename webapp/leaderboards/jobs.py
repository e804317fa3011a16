"""Eval jobs: ``fipo eval`` on a run's checkpoint and a stored benchmark, started through the
launchers, watched by a Celery task, recorded on the team's board.

Why a launched job and not an import: the worker stays free of torch and of model memory, the job
runs exactly the command a user would run (``fipo eval --model <checkpoint> ...``), a crash or an
out-of-memory kill fails the job, not the worker, and cancelling is the launcher's stop that
training runs use. The job goes through its run's launcher: a local process, or a Ray job on the
run's head (``_start``). It reads a stored benchmark (written to the job's directory, or carried in
the Ray job's environment), never a path a user gave.

Lifecycle of an ``EvalJob`` row: ``queued`` (POST evaluate) -> ``running`` (the task started the
command) -> ``succeeded`` (entry recorded) | ``failed`` (``error`` says why: the command's last
output) | ``cancelled``. ``fipo eval --report-lines`` prints its progress (problems done of total,
running Pass@1), every problem's responses and the result as lines of the job's log
(``fipo_engine.eval.report``); the task follows that log through the launcher (a local file, or
the Ray driver log over REST) and copies progress into the row and into the run's stream as
``eval_job`` items, which the run page receives over its websocket. Cancelling sets
``cancel_requested``; the task sees it within a poll interval and stops the job.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.accounts.models import User
from webapp.accounts.selectors import user_team_ids
from webapp.common.errors import Conflict, NotFound, ValidationFailed
from webapp.leaderboards.benchmarks import benchmark_file, benchmark_resolve
from webapp.leaderboards.enqueue import run_eval_job_on_commit
from webapp.leaderboards.models import Benchmark, EvalJob, EvalJobStatus
from webapp.leaderboards.services import entry_record_eval
from webapp.runs.models import Checkpoint, Run
from webapp.runs.selectors import access_run_write, run_get
from webapp.runs.services import ray_target, run_lock, run_paths
from webapp.runs.stream import stream_append
from worker.launchers import LaunchSpec
from worker.launchers.local import LocalLauncher
from worker.launchers.ray import RayLauncher, eval_submission

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
MAX_K = 1024
POLL_S = 0.5
LOG_READ_BYTES = 64 << 20  # a read of the job's log: the whole of it in one request, but bounded


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
    if out.get("k", 1) > MAX_K:
        errors.append({"path": "k", "message": f"must be at most {MAX_K}"})
    if errors:
        raise ValidationFailed("invalid eval options: " + "; ".join(f"{e['path']} {e['message']}" for e in errors),
                               fields=errors)
    return out


def _checkpoint(run: Run, step: int | None) -> Checkpoint:
    qs = Checkpoint.objects.filter(run=run)
    checkpoint = (qs.filter(step=step) if step is not None else qs).order_by("-step", "-id").first()
    if checkpoint is None:
        which = f"at step {step}" if step is not None else "yet"
        raise Conflict(f"run {run.pk} has no checkpoint {which}")
    if not checkpoint_allowed(run, checkpoint.uri):
        raise ValidationFailed("the checkpoint is not inside this run's directory",
                               fields=[{"path": "step", "message": "its checkpoint is outside the run's directory"}])
    return checkpoint


def checkpoint_allowed(run: Run, uri: str) -> bool:
    """Whether an eval job may read the checkpoint its run reported at ``uri`` (the run's trainer,
    anyone holding its token, chose that text).

    A local run's checkpoint must be a directory inside the run's own directory on this machine, so a
    reported path cannot make the worker read other files. A Ray run's checkpoint is a path on the
    cluster, read by a job on the cluster, where the run's own code already runs and the worker never
    opens it: it must be a plain absolute path (no ``..``) inside a ``checkpoints`` directory."""
    path = checkpoint_path(uri)
    if run.launcher == "ray":
        return path.is_absolute() and ".." not in path.parts and "checkpoints" in path.parts[:-1]
    real, own = os.path.realpath(path), os.path.realpath(run_paths(run)[0])
    return real.startswith(own + os.sep)


def checkpoint_path(uri: str) -> Path:
    """A checkpoint's local directory from its ``uri`` (a path or ``file://`` URL)."""
    return Path(uri.removeprefix("file://"))


PAPER_PROTOCOL = {"k": 32, "temperature": 1.0, "top_p": 0.7}


def run_defaults(run: Run) -> dict[str, Any]:
    """Eval settings a job of this run gets unless the request overrides them (and what the run
    page's Evaluate form shows): the run's own response length limit and eval sampling settings;
    k is the run's ``trainer.eval_k`` for the tiny CPU models and the paper's 32 otherwise."""
    cfg = run.config if isinstance(run.config, dict) else {}
    rollout, trainer, model = cfg.get("rollout", {}), cfg.get("trainer", {}), cfg.get("model", {})
    small = model.get("source") == "tiny"
    defaults = {"k": trainer.get("eval_k") if small else PAPER_PROTOCOL["k"],
                "max_new_tokens": rollout.get("max_new_tokens"),
                "temperature": trainer.get("eval_temperature", PAPER_PROTOCOL["temperature"]),
                "top_p": trainer.get("eval_top_p", PAPER_PROTOCOL["top_p"])}
    return {k: v for k, v in defaults.items() if v is not None}


def eval_job_queue(*, user: User, body: Mapping[str, Any]) -> EvalJob:
    """Check access and inputs, create the job row, queue ``run_eval_job`` after the commit."""
    run_id = body.get("run")
    if isinstance(run_id, bool) or not isinstance(run_id, int):
        raise ValidationFailed("run must be a run id", fields=[{"path": "run", "message": "required"}])
    run = run_get(user=user, run_id=run_id)
    access_run_write(user=user, run=run)
    bench = benchmark_resolve(user=user, ref=body.get("benchmark"), team_id=run.team_id)
    step = body.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ValidationFailed("step must be an integer", fields=[{"path": "step", "message": "invalid"}])
    checkpoint = _checkpoint(run, step)
    opts = clean_options(body)
    total = min(opts.get("limit", bench.n_problems), bench.n_problems)
    job = EvalJob.objects.create(run=run, benchmark=bench, step=checkpoint.step, checkpoint_uri=checkpoint.uri,
                                 options=opts, total=total, created_by=user)
    run_eval_job_on_commit(job.pk)
    return job


def eval_job_get(*, user: User, job_id: int) -> EvalJob:
    job = (EvalJob.objects.filter(pk=job_id, run__team_id__in=user_team_ids(user=user))
           .select_related("benchmark", "run").first())
    if job is None:
        raise NotFound(f"eval job {job_id} not found")
    return job


def eval_job_list(*, user: User, run_id: int) -> tuple[Run, list[EvalJob]]:
    """A run the user may see and its latest 50 eval jobs, newest first."""
    run = run_get(user=user, run_id=run_id)
    return run, list(EvalJob.objects.filter(run=run).select_related("benchmark").order_by("-id")[:50])


def eval_job_cancel(*, user: User, job_id: int) -> EvalJob:
    """Ask the job to stop; a queued job is cancelled at once, a running one by its task."""
    job = eval_job_get(user=user, job_id=job_id)
    access_run_write(user=user, run=job.run)
    with transaction.atomic():
        job = EvalJob.objects.select_for_update().select_related("benchmark", "run").get(pk=job.pk)
        if job.is_final:
            return job
        job.cancel_requested = True
        fields = ["cancel_requested"]
        if job.status == EvalJobStatus.QUEUED:
            job.status, job.finished_at, job.error = EvalJobStatus.CANCELLED, timezone.now(), "cancelled before it started"
            fields += ["status", "finished_at", "error"]
        job.save(update_fields=fields)
    if job.status == EvalJobStatus.CANCELLED:
        _append_stream(job.run_id, "eval_job", job_progress(job))
    return job


def job_progress(job: EvalJob) -> dict[str, Any]:
    """What the run page shows of a job (also the ``eval_job`` stream item)."""
    return {"job": job.pk, "status": job.status, "benchmark": job.benchmark_id,
            "benchmark_label": job.benchmark.label, "step": job.step, "done": job.done, "total": job.total,
            "pass_at_1": job.pass_at_1, "entry": job.entry_id, "error": job.error}


def eval_args(*, model: Path, benchmark: str, layout: str | None, grader: str | None, step: int | None,
              options: Mapping[str, Any]) -> list[str]:
    """The ``fipo eval`` arguments of a job (after ``fipo eval``): results come back as report lines
    in the job's log (``fipo_engine.eval.report``), whichever launcher runs it."""
    args = ["--model", str(model), "--benchmark", benchmark, "--report-lines"]
    if layout:
        args += ["--layout", layout]
    if grader:
        args += ["--grader", grader]
    if step is not None:
        args += ["--step", str(step)]
    for key, value in options.items():
        args += [_OPTIONS[key][1], str(value)]
    return args


def _set(job: EvalJob, **fields: Any) -> None:
    for key, value in fields.items():
        setattr(job, key, value)
    job.save(update_fields=list(fields))


def _finish(job: EvalJob, status: str, error: str = "") -> None:
    _set(job, status=status, error=error[-4000:], finished_at=timezone.now())
    _append_stream(job.run_id, "eval_job", job_progress(job))


def _start(job: EvalJob, workdir: Path) -> tuple[Any, str, float]:
    """Start ``fipo eval`` for the job through its run's launcher: (launcher, handle, poll interval).

    A ``ray`` run's job goes to the same Ray head as the run, with the stored benchmark in its
    environment; every other run's job is a local process with the benchmark written to its
    directory. Raises ``LauncherError`` (or ``OSError``) with the reason."""
    bench: Benchmark = job.benchmark
    # a stored benchmark as the file fipo eval reads, graded by its own grader; a built-in goes by name
    path, layout = benchmark_file(bench, workdir) if bench.team_id is not None else (None, None)
    grader = bench.grader if path else None
    model = checkpoint_path(job.checkpoint_uri)
    opts = {**run_defaults(job.run), **job.options}
    if job.run.launcher == "ray":
        address, env = ray_target(job.run)
        args = eval_args(model=model, benchmark=bench.name, layout=layout, grader=grader, step=job.step, options=opts)
        body = eval_submission(key=f"{job.pk}-{os.urandom(4).hex()}", eval_args=args,
                               benchmark=path.read_bytes() if path else None, env=env,
                               metadata={"fipo_eval_job": str(job.pk), "fipo_run_id": str(job.run_id)})
        launcher = RayLauncher()
        return launcher, launcher.submit(address, body), 2.0  # each poll reads the whole driver log
    cmd = [sys.executable, "-m", "fipo_engine.cli", "eval",
           *eval_args(model=model, benchmark=str(path) if path else bench.name, layout=layout, grader=grader,
                      step=job.step, options=opts)]
    launcher = LocalLauncher(command=lambda _spec, _cfg: cmd)
    spec = LaunchSpec(run_id=f"eval-{job.pk}", config={}, server_url="", token="", workdir=workdir,
                      log_path=workdir / "eval.log")
    return launcher, launcher.start(spec), POLL_S


def eval_job_run(job_id: int) -> int | None:
    """The ``run_eval_job`` task: launch ``fipo eval``, follow its report lines, record the entry.

    Returns the entry id, or None when the job failed, was cancelled or is gone."""
    job = EvalJob.objects.select_related("benchmark", "run").filter(pk=job_id).first()
    if job is None or job.is_final:
        return None
    if job.cancel_requested:
        _finish(job, EvalJobStatus.CANCELLED, "cancelled before it started")
        return None
    workdir = Path(settings.FIPO_RUNS_DIR) / str(job.run_id) / "evals" / f"job-{job.pk}"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        launcher, handle, poll_s = _start(job, workdir)
    except Exception as exc:  # LauncherError and OSError: the reason is the job's failure
        _finish(job, EvalJobStatus.FAILED, f"could not start fipo eval: {exc}")
        return None
    _set(job, status=EvalJobStatus.RUNNING, handle=handle, started_at=timezone.now())
    _append_stream(job.run_id, "eval_job", job_progress(job))
    log = _LogFollower(job, launcher, handle, workdir / "eval.log")
    state = _wait(job, launcher, handle, poll_s, log)
    if state is None:
        return None
    log.follow()  # what the job printed after the last poll
    return _record(job, state, log)


class _LogFollower:
    """Reads a running eval job's log into a ``ReportReader``, publishing each progress line."""

    def __init__(self, job: EvalJob, launcher: Any, handle: str, log_path: Path) -> None:
        # Lazy: the package fipo_engine.eval imports its runner, i.e. torch, which only the worker's
        # task needs (the web process imports this module for the API and must stay free of it).
        from fipo_engine.eval.report import ReportReader

        self.job, self.launcher, self.handle, self.log_path = job, launcher, handle, log_path
        self.reader, self.offset, self.tail = ReportReader(), 0, ""

    def follow(self) -> None:
        """Read the log from ``offset`` to its current end: one read per poll, more only while a
        read came back full (a Ray read downloads the whole driver log each time)."""
        job = self.job
        while True:
            start = self.offset
            try:
                text, self.offset = self.launcher.read_log(self.handle, self.log_path, self.offset,
                                                           max_bytes=LOG_READ_BYTES)
            except Exception as exc:  # a log read that fails is retried at the next poll
                logger.warning("eval job %s: reading its log failed: %s", job.pk, exc)
                return
            if not text:
                return
            self.tail = (self.tail + text)[-4000:]
            if self.reader.feed(text) and self.reader.progress:
                progress = self.reader.progress
                _set(job, done=int(progress.get("done") or 0), total=int(progress.get("total") or job.total),
                     pass_at_1=progress.get("pass_at_1"))
                _append_stream(job.run_id, "eval_job", job_progress(job))
            if self.offset - start < LOG_READ_BYTES - 3:  # short of full (a split UTF-8 character is held back)
                return


def _wait(job: EvalJob, launcher: Any, handle: str, poll_s: float, log: _LogFollower) -> Any:
    """Poll the job until it ends, following its log; its final status, or None when it was
    cancelled or ran past ``FIPO_EVAL_TIMEOUT_S`` (then it is stopped and the job finished)."""
    timeout = float(settings.FIPO_EVAL_TIMEOUT_S)
    deadline = time.monotonic() + timeout
    while True:
        state = launcher.poll(handle)
        log.follow()
        if state.state not in ("running", "pending"):
            return state
        if EvalJob.objects.filter(pk=job.pk, cancel_requested=True).exists():
            launcher.cancel(handle, grace_s=3.0)
            _finish(job, EvalJobStatus.CANCELLED, "cancelled")
            return None
        if time.monotonic() > deadline:
            launcher.cancel(handle, grace_s=3.0)
            _finish(job, EvalJobStatus.FAILED, f"timed out after {timeout:.0f} s")
            return None
        time.sleep(poll_s)


def _record(job: EvalJob, state: Any, log: _LogFollower) -> int | None:
    """Turn the ended job's result line into a leaderboard entry (or the job's failure, with the
    log's tail as the reason); the entry id, or None."""
    bench: Benchmark = job.benchmark
    result = log.reader.result
    if state.state != "succeeded" or result is None:
        clean = "\n".join(line for line in log.tail.splitlines() if not line.startswith("fipo-eval "))[-1500:]
        _finish(job, EvalJobStatus.FAILED, f"fipo eval failed ({state.message}):\n{clean}")
        _append_stream(job.run_id, "log", {"text": f"eval on {bench.label} (step {job.step}) failed: "
                                                   f"{state.message}\n{clean}"})
        return None
    payload = {k: v for k, v in result.items() if k != "problems"}
    payload["step"] = job.step
    payload["benchmark"] = bench.name
    try:
        with transaction.atomic():
            entry = entry_record_eval(run=job.run, data=payload, benchmark=bench,
                                      problems=merge_responses(result.get("problems") or [], log.reader.responses))
            _append_stream(job.run_id, "eval", payload)
            _set(job, entry=entry, done=job.total, pass_at_1=entry.pass_at_1)
            _finish(job, EvalJobStatus.SUCCEEDED)
    except ValidationFailed as exc:
        _finish(job, EvalJobStatus.FAILED, f"the result could not be recorded: {exc}")
        return None
    return entry.pk


def merge_responses(problems: list[dict[str, Any]], responses: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-problem results with the response texts, lengths and truncation flags added."""
    out = []
    for row in problems:
        extra = responses.get(str(row.get("id")), {})
        n = row.get("n") or 0
        merged = dict(row)
        for key in ("responses", "lengths", "truncated"):
            if isinstance(extra.get(key), list):
                merged[key] = extra[key][:n] if n else extra[key]
        out.append(merged)
    return out


def _append_stream(run_id: int, type_: str, data: dict[str, Any]) -> None:
    """One item in the run's stream, under the run's row lock, with the websocket notice after commit."""
    with transaction.atomic():
        run = run_lock(run_id)
        stream_append(run=run, items=[(type_, data, None)])
        run.save(update_fields=["stream_pos", "updated_at"])
