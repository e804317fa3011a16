"""Writes of runs: create/clone/delete, and the lifecycle.

Every status change goes through ``run_transition_locked`` while the caller holds the run's row
lock (``select_for_update``): it checks the change is allowed (``ALLOWED_TRANSITIONS``), records a
``RunTransition``, appends a ``status`` stream item and schedules the websocket notice for after
the commit. The runs app owns this; the tracking app's ingest calls it (a trainer's first event,
its final status) and never writes a status itself. Launching and cancelling jobs happens in Celery
tasks (``webapp.runs.tasks``) that call ``run_start_job`` / ``run_cancel_job`` / ``runs_reap_lost``
here; services queue them through ``webapp.runs.enqueue``, never by importing the tasks.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from fipo_engine.config import (
    SCHEMA_VERSION,
    ConfigError,
    RunConfig,
    apply_overrides,
    preset_dict,
    validate_config,
)
from webapp.accounts.models import Team, User
from webapp.accounts.selectors import user_can_write, user_role
from webapp.common.auth import token_hash
from webapp.common.errors import Conflict, PermissionDeniedError, ValidationFailed
from webapp.runs.enqueue import cancel_run_on_commit, launch_run_on_commit
from webapp.runs.models import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    RESUMABLE_STATUSES,
    Run,
    RunStatus,
    RunTransition,
)
from webapp.runs.policy import check_run_config, ray_head
from webapp.runs.selectors import access_run_write, launcher_can_resume, run_checkpoints
from webapp.runs.stream import notify_team_on_commit, status_data, stream_append
from worker.launchers import LauncherError, LaunchSpec, get_launcher

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200


# ------------------------------------------------------------------------------------ config
def resolve_config(*, preset: str | None = None, overrides: Any = None, config: Any = None) -> RunConfig:
    """The validated config from a preset or a (partial) config dict, plus dotted overrides.

    Raises ``ValidationFailed`` whose fields carry dotted config paths (``trainer.lr``).
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) and k for k in overrides):
        raise ValidationFailed("overrides must be an object of dotted.key: value",
                               fields=[{"path": "overrides", "message": "expected an object with string keys"}])
    if config is not None and not isinstance(config, Mapping):
        raise ValidationFailed("config must be an object", fields=[{"path": "config", "message": "expected an object"}])
    if preset is not None and not isinstance(preset, str):
        raise ValidationFailed("preset must be a string", fields=[{"path": "preset", "message": "expected a string"}])
    try:
        if config is not None:
            base: Mapping[str, Any] = dict(config)
            if preset is not None and "preset" not in base:
                base = {**base, "preset": preset}
        elif preset is not None:
            base = preset_dict(preset)
        else:
            base = {}
        cfg = validate_config(base)
        return apply_overrides(cfg, dict(overrides)) if overrides else cfg
    except ConfigError as exc:
        raise ValidationFailed(f"invalid config: {exc}", fields=exc.errors) from None
    except (TypeError, ValueError, RecursionError) as exc:  # odd JSON shapes the pydantic layer does not map
        raise ValidationFailed(f"invalid config: {exc}", fields=[{"path": "config", "message": str(exc)}]) from None


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationFailed("name is required", fields=[{"path": "name", "message": "a non-empty string"}])
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationFailed("name too long", fields=[{"path": "name", "message": f"at most {MAX_NAME_LENGTH} characters"}])
    return name


def _check_team(*, user: User, team_id: Any) -> int:
    if isinstance(team_id, bool) or not isinstance(team_id, int) or not 0 < team_id < 2**63:
        raise ValidationFailed("team is required", fields=[{"path": "team", "message": "a team id (integer)"}])
    role = user_role(user=user, team_id=team_id)
    if role is None:  # same answer for "does not exist" and "not yours"
        raise ValidationFailed("unknown team", fields=[{"path": "team", "message": "no such team"}])
    if not user_can_write(user=user, team_id=team_id):
        raise PermissionDeniedError("viewers cannot create runs in this team")
    return team_id


# ---------------------------------------------------------------------------------- creation
@transaction.atomic
def run_create(*, user: User, team_id: Any, name: Any, preset: Any = None, overrides: Any = None,
               config: Any = None) -> Run:
    """A new draft run with a validated, fully resolved config."""
    name = _clean_name(name)
    team_id = _check_team(user=user, team_id=team_id)
    cfg = resolve_config(preset=preset, overrides=overrides, config=config)
    _check_policy(cfg, team_id=team_id)
    return _insert_draft(user=user, team_id=team_id, name=name, cfg=cfg)


def _check_policy(cfg: RunConfig, *, team_id: int) -> None:
    """What the deployment allows this team's runs to read, call and install (``runs.policy``)."""
    check_run_config(cfg, team_id=team_id, team_name=Team.objects.get(pk=team_id).name)


def _insert_draft(*, user: User, team_id: int, name: str, cfg: RunConfig) -> Run:
    now = timezone.now()
    run = Run.objects.create(
        name=name, team_id=team_id, created_by=user, config=cfg.model_dump(mode="json"),
        schema_version=cfg.schema_version or SCHEMA_VERSION, preset=cfg.preset,
        launcher=cfg.launcher.backend, status=RunStatus.DRAFT, status_changed_at=now,
    )
    # The draft's creation is the first transition (from None), so the stream starts with it.
    _record_transition(run=run, from_status=None, to=RunStatus.DRAFT, reason=f"created by {user.username}", at=now)
    run.save(update_fields=["stream_pos"])
    notify_team_on_commit(team_id=team_id)
    return run


@transaction.atomic
def run_clone(*, user: User, run: Run) -> Run:
    """A new draft with the same config in the same team, named ``<name> (copy)``."""
    access_run_write(user=user, run=run)
    cfg = resolve_config(config=run.config)  # a config from an older schema fails as a 400, not a 500
    _check_policy(cfg, team_id=run.team_id)
    name = f"{run.name} (copy)"[:MAX_NAME_LENGTH]
    return _insert_draft(user=user, team_id=run.team_id, name=name, cfg=cfg)


@transaction.atomic
def run_delete(*, user: User, run: Run) -> None:
    """Delete a draft (runs that ran keep their history)."""
    access_run_write(user=user, run=run)
    locked = Run.objects.select_for_update().get(pk=run.pk)
    if locked.status != RunStatus.DRAFT:
        raise Conflict(f"only drafts can be deleted; this run is {locked.status}")
    locked.delete()


# --------------------------------------------------------------------------------- lifecycle
def _record_transition(*, run: Run, from_status: str | None, to: str, reason: str, at: datetime,
                       seq: int | None = None) -> RunTransition:
    transition = RunTransition.objects.create(run=run, at=at, from_status=from_status, to_status=to, reason=reason)
    stream_append(run=run, items=[("status", status_data(transition), seq)])
    return transition


def run_transition_locked(*, run: Run, to: str, reason: str, seq: int | None = None) -> None:
    """Move ``run`` to ``to``. The caller holds its row lock (``run_lock``) inside ``transaction.atomic``.

    The one way a run's status changes, for this app and for the tracking app's ingest alike;
    ``seq`` is the trainer event that caused it (its ``status`` stream item carries that seq).
    Raises ``Conflict`` when ``ALLOWED_TRANSITIONS`` does not allow the change."""
    if to not in ALLOWED_TRANSITIONS.get(run.status, frozenset()):
        raise Conflict(f"cannot move a {run.status} run to {to}")
    now = timezone.now()
    _record_transition(run=run, from_status=run.status, to=to, reason=reason[:2000], at=now, seq=seq)
    run.status = to
    run.status_changed_at = now
    run.save(update_fields=["status", "status_changed_at", "stream_pos", "updated_at"])
    notify_team_on_commit(team_id=run.team_id)


def run_lock(run_id: int) -> Run:
    """The run row under ``SELECT ... FOR UPDATE`` (call inside ``transaction.atomic``)."""
    return Run.objects.select_for_update().get(pk=run_id)


@transaction.atomic
def run_transition(*, run_id: int, to: str, reason: str, expected: frozenset[str] | None = None) -> bool:
    """Guarded status change of one run. Returns False (and changes nothing) when the run is not in
    one of the ``expected`` states; raises ``Conflict`` when the change is not allowed."""
    run = run_lock(run_id)
    if expected is not None and run.status not in expected:
        return False
    run_transition_locked(run=run, to=to, reason=reason)
    return True


def run_launch(*, run: Run, user: User) -> Run:
    """draft -> queued, then (after commit) the ``launch_run`` task starts the job."""
    access_run_write(user=user, run=run)
    with transaction.atomic():
        locked = run_lock(run.pk)
        if locked.status != RunStatus.DRAFT:
            raise Conflict(f"only drafts can be launched; this run is {locked.status}")
        # Checked again: the deployment's roots, heads and allow-lists may have changed since create.
        _check_policy(resolve_config(config=locked.config), team_id=locked.team_id)
        run_transition_locked(run=locked, to=RunStatus.QUEUED, reason=f"launched by {user.username}")
        launch_run_on_commit(locked.pk)
    return locked


def run_cancel(*, run: Run, user: User) -> Run:
    """Ask for a run to stop. A queued run is cancelled at once; a started one is cancelled by the
    ``cancel_run`` task once its job is stopped (SIGTERM, then SIGKILL after the grace period)."""
    access_run_write(user=user, run=run)
    with transaction.atomic():
        locked = run_lock(run.pk)
        if locked.status not in ACTIVE_STATUSES:
            raise Conflict(f"a {locked.status} run cannot be cancelled")
        if locked.status == RunStatus.QUEUED:
            run_transition_locked(run=locked, to=RunStatus.CANCELLED, reason=f"cancelled by {user.username}")
            return locked
        if locked.cancel_requested_at is None:
            locked.cancel_requested_at = timezone.now()
            locked.save(update_fields=["cancel_requested_at", "updated_at"])
        cancel_run_on_commit(locked.pk, user.username)
    return locked


def run_resume(*, run: Run, user: User) -> Run:
    """Continue a lost, failed or cancelled run from its newest checkpoint: the same run, a new
    segment of its status history (-> queued, then ``launch_run`` starts the job with ``--resume``
    through the run's own launcher).

    Refused (409) when the run is in another state, has no checkpoint on disk, uses a launcher
    that cannot resume, or its job is still alive (a lost run whose trainer only lost the server:
    two trainers must never share a run directory).
    """
    access_run_write(user=user, run=run)
    # a resume starts a job: what the deployment allows now, as for a launch (settings change)
    _check_policy(resolve_config(config=run.config), team_id=run.team_id)
    with transaction.atomic():
        locked = run_lock(run.pk)
        if locked.status not in RESUMABLE_STATUSES:
            raise Conflict(f"only lost, failed or cancelled runs can be resumed; this run is {locked.status}")
        if not launcher_can_resume(locked.launcher):
            raise Conflict(f"resume is not supported by the {locked.launcher} launcher")
        checkpoints = run_checkpoints(run=locked)
        if not checkpoints:
            raise Conflict("this run has no checkpoint to resume from")
        handle = job_handle(locked)
        if handle:
            try:
                job = get_launcher(locked.launcher).poll(handle)
            except LauncherError as exc:
                raise Conflict(f"cannot tell whether the job is still running: {exc}") from None
            if job.state in {"running", "pending"}:
                raise Conflict("the run's job is still running; cancel it before resuming")
        locked.cancel_requested_at = None  # the new segment starts without the old cancel request
        locked.save(update_fields=["cancel_requested_at", "updated_at"])
        run_transition_locked(run=locked, to=RunStatus.QUEUED,
                           reason=f"resumed by {user.username} from its newest checkpoint "
                                  f"(the last reported: step {checkpoints[-1].step})")
        launch_run_on_commit(locked.pk)
    return locked


# ------------------------------------------------------------------------------- job control
def run_dir_name(run: Run) -> str:
    """``<id>-<12 hex digits of the run's uid>``: unique for the life of the deployment (ids are not:
    a second database starts again at 1), readable in a listing. Runs from before ``uid`` existed
    keep their old ``<id>``."""
    return f"{run.pk}-{run.uid.hex[:12]}" if run.uid else str(run.pk)


def run_paths(run: Run) -> tuple[Path, Path]:
    """(workdir, log_path) of a run on the machine that runs local jobs."""
    workdir = Path(settings.FIPO_RUNS_DIR) / run_dir_name(run)
    return workdir, workdir / "run.log"


def ray_target(run: Run) -> tuple[str, dict[str, str]]:
    """(address, job variables) of the deployment's Ray head that a ``ray`` run names
    (``launcher.ray.head``, default ``default``); its eval jobs go to the same head."""
    head_name = ((run.config.get("launcher") or {}).get("ray") or {}).get("head", "default")
    try:
        return ray_head(head_name)
    except ValidationFailed:
        raise LauncherError(f"the Ray head {head_name!r} is not configured on this deployment") from None


def _launch_spec(run: Run, token: str, *, resume: bool = False) -> Any:
    workdir, log_path = run_paths(run)
    address: str | None = None
    env: dict[str, str] = {}
    if run.launcher == "ray":
        address, env = ray_target(run)
    return LaunchSpec(run_id=str(run.pk), config=run.config, server_url=settings.FIPO_SERVER_URL, token=token,
                      workdir=workdir, log_path=log_path, env=env, address=address,
                      run_uid=str(run.uid) if run.uid else None, resume=resume)


def job_handle(run: Run) -> str | None:
    """The run's job handle. A local job whose launch task died between starting the job and
    recording its handle (worker SIGKILLed mid-launch) is still found: the launcher writes the
    handle next to the job first. Without this, a cancel marked such a run cancelled while its
    trainer kept running."""
    if run.handle:
        return run.handle
    if run.launcher != "local":
        return None
    try:
        return (run_paths(run)[0] / "handle").read_text().strip() or None
    except OSError:
        return None


def run_start_job(run_id: int) -> bool:
    """The ``launch_run`` task: issue the run token, queued -> starting, start the job through the
    run's launcher and record its handle; a ``LauncherError`` fails the run with its message.

    Returns False when there was nothing to do (run gone, or no longer queued: e.g. cancelled, or a
    redelivered task), which makes the task safe to run twice.
    """
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return False
        # A run that had a job before is being resumed (run_resume): --resume from its checkpoint.
        resume = bool(run.handle)
        run.token_hash = token_hash(token)
        run.save(update_fields=["token_hash", "updated_at"])
        verb = "resuming" if resume else "starting"
        run_transition_locked(run=run, to=RunStatus.STARTING, reason=f"{verb} with the {run.launcher} launcher")
    try:
        spec = _launch_spec(run, token, resume=resume)
        spec.workdir.mkdir(parents=True, exist_ok=True)
        handle = get_launcher(run.launcher).start(spec)
    except (LauncherError, OSError) as exc:
        logger.warning("launch of run %s failed: %s", run_id, exc)
        run_transition(run_id=run_id, to=RunStatus.FAILED, reason=f"launch failed: {exc}",
                       expected=frozenset({RunStatus.STARTING}))
        return True
    with transaction.atomic():
        run = run_lock(run_id)
        run.handle = handle
        run.save(update_fields=["handle", "updated_at"])
        cancel_now = run.cancel_requested_at is not None and run.status not in FINAL_STATUSES
    if cancel_now:  # cancelled while the launcher was starting the job
        run_cancel_job(run_id, requested_by="")
    return True


def run_cancel_job(run_id: int, requested_by: str = "") -> bool:
    """The ``cancel_run`` task: stop the job through its launcher, then -> cancelled.

    A trainer that reports ``failed`` while being stopped is recorded as cancelled by the ingest
    path (the cancel was requested), so the user sees the outcome they asked for.
    """
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status in FINAL_STATUSES:
        return False
    note = ""
    handle = job_handle(run)
    if handle:
        try:
            state = get_launcher(run.launcher).cancel(handle, grace_s=settings.FIPO_CANCEL_GRACE_S)
            note = f" (job {state.state}{'' if state.exit_code is None else f', exit code {state.exit_code}'})"
        except LauncherError as exc:
            note = f" (stopping the job failed: {exc})"
    elif run.status == RunStatus.STARTING:
        return False  # no handle yet: the launch task records it, sees the request and calls us again
    who = f" by {requested_by}" if requested_by else ""
    return run_transition(run_id=run_id, to=RunStatus.CANCELLED, reason=f"cancelled{who}{note}",
                          expected=ACTIVE_STATUSES)


def _last_sign_of_life(run: Run) -> datetime:
    return max(run.last_heartbeat or run.status_changed_at, run.status_changed_at)


def _reports_its_own_end(run: Run) -> bool:
    """False for OpenRLHF jobs: their trainer is OpenRLHF's, which sends no final status (our tracker
    actor only forwards steps and heartbeats), so the job's terminal state is the run's end."""
    engine = (((run.config or {}).get("launcher") or {}).get("ray") or {}).get("engine", "native")
    return engine != "openrlhf"


def _ended_job(job: Any) -> tuple[str, str] | None:
    """(status, reason) of a run whose job the launcher reports ended; None while it may still run."""
    if job.state in {"failed", "stopped"}:
        reason = f"job {job.state}" + (f" with exit code {job.exit_code}" if job.exit_code is not None else "")
        return RunStatus.FAILED, reason + (f": {job.message}" if job.message else "")
    if job.state == "succeeded":
        return RunStatus.SUCCEEDED, "job succeeded (reported by the launcher)"
    return None


def runs_reap_lost(*, now: datetime | None = None) -> list[int]:
    """The ``reap_lost_runs`` beat task: starting/running runs without an event for
    ``FIPO_HEARTBEAT_TIMEOUT_S`` become ``lost`` (or ``failed`` when the launcher says the job died
    with an error, ``succeeded`` when it says the job succeeded). Runs whose trainer cannot report its
    own end (OpenRLHF jobs, whose tracker heartbeats until the job is gone) are asked every tick, so
    their end shows within a reap interval, not a heartbeat window. Returns the ids it changed."""
    now = now or timezone.now()
    changed = _reap_ended_openrlhf_jobs()
    timeout = timedelta(seconds=settings.FIPO_HEARTBEAT_TIMEOUT_S)
    # "Last sign of life" is the later of the last event and the last status change: a resumed run
    # is starting again with the heartbeat of its previous segment, which must not count.
    stale = list(
        Run.objects.filter(status__in=[RunStatus.STARTING, RunStatus.RUNNING])
        .annotate(seen=Greatest(Coalesce("last_heartbeat", "status_changed_at"), "status_changed_at"))
        .filter(seen__lt=now - timeout)
    )
    for run in stale:  # queried after the OpenRLHF pass: the runs it ended are not stale any more
        silent_for = int((now - _last_sign_of_life(run)).total_seconds())
        to, reason = RunStatus.LOST, f"no heartbeat for {silent_for} s"
        handle = job_handle(run)
        if handle:
            try:
                job = get_launcher(run.launcher).poll(handle)
            except LauncherError as exc:
                reason += f"; launcher poll failed: {exc}"
            else:
                ended = _ended_job(job)
                if ended:
                    to, reason = ended
                else:
                    reason += f"; launcher says the job is {job.state}"
        else:
            reason += "; no job was recorded (the worker died while launching?)"
        with transaction.atomic():
            locked = run_lock(run.pk)
            if locked.status in {RunStatus.STARTING, RunStatus.RUNNING} and _last_sign_of_life(locked) < now - timeout:
                run_transition_locked(run=locked, to=to, reason=reason)
                changed.append(run.pk)
    return changed


def _reap_ended_openrlhf_jobs() -> list[int]:
    """Active runs that cannot report their own end whose job has ended: that end, now."""
    changed = []
    active = Run.objects.filter(status__in=[RunStatus.STARTING, RunStatus.RUNNING], handle__isnull=False)
    for run in active.exclude(handle=""):
        if _reports_its_own_end(run):
            continue
        try:
            ended = _ended_job(get_launcher(run.launcher).poll(run.handle))
        except LauncherError:
            continue  # the silence rule still applies
        if ended is None:
            continue
        with transaction.atomic():
            locked = run_lock(run.pk)
            if locked.status in {RunStatus.STARTING, RunStatus.RUNNING}:
                run_transition_locked(run=locked, to=ended[0], reason=ended[1])
                changed.append(run.pk)
    return changed
