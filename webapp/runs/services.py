"""Writes of runs: create/clone/delete, and the lifecycle.

Every status change goes through ``_transition_locked`` while the caller holds the run's row lock
(``select_for_update``): it checks the change is allowed (``ALLOWED_TRANSITIONS``), records a
``RunTransition``, appends a ``status`` stream item and schedules the websocket notice for after
the commit. Launching and cancelling jobs happens in Celery tasks (``webapp.runs.tasks``) that call
``run_start_job`` / ``run_cancel_job`` / ``runs_reap_lost`` here.
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
from django.db.models.functions import Coalesce
from django.utils import timezone

from fipo_engine.config import (
    SCHEMA_VERSION,
    ConfigError,
    RunConfig,
    apply_overrides,
    preset_dict,
    validate_config,
)
from webapp.accounts.models import User
from webapp.accounts.selectors import user_can_write, user_role
from webapp.common.auth import token_hash
from webapp.common.errors import Conflict, PermissionDeniedError, ValidationFailed
from webapp.runs.models import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    Run,
    RunStatus,
    RunTransition,
)
from webapp.runs.selectors import access_run_write
from webapp.tracking.stream import notify_team_on_commit, status_data, stream_append

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
    if isinstance(team_id, bool) or not isinstance(team_id, int):
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
    return _insert_draft(user=user, team_id=team_id, name=name, cfg=cfg)


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


def _transition_locked(*, run: Run, to: str, reason: str, seq: int | None = None) -> None:
    """Move ``run`` to ``to``. The caller holds its row lock (``run_lock``) inside ``transaction.atomic``."""
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
    _transition_locked(run=run, to=to, reason=reason)
    return True


def run_launch(*, run: Run, user: User) -> Run:
    """draft -> queued, then (after commit) the ``launch_run`` task starts the job."""
    from webapp.runs.tasks import launch_run

    access_run_write(user=user, run=run)
    with transaction.atomic():
        locked = run_lock(run.pk)
        if locked.status != RunStatus.DRAFT:
            raise Conflict(f"only drafts can be launched; this run is {locked.status}")
        _transition_locked(run=locked, to=RunStatus.QUEUED, reason=f"launched by {user.username}")
        transaction.on_commit(lambda: launch_run.delay(locked.pk))
    return locked


def run_cancel(*, run: Run, user: User) -> Run:
    """Ask for a run to stop. A queued run is cancelled at once; a started one is cancelled by the
    ``cancel_run`` task once its job is stopped (SIGTERM, then SIGKILL after the grace period)."""
    from webapp.runs.tasks import cancel_run

    access_run_write(user=user, run=run)
    with transaction.atomic():
        locked = run_lock(run.pk)
        if locked.status not in ACTIVE_STATUSES:
            raise Conflict(f"a {locked.status} run cannot be cancelled")
        if locked.status == RunStatus.QUEUED:
            _transition_locked(run=locked, to=RunStatus.CANCELLED, reason=f"cancelled by {user.username}")
            return locked
        if locked.cancel_requested_at is None:
            locked.cancel_requested_at = timezone.now()
            locked.save(update_fields=["cancel_requested_at", "updated_at"])
        who = user.username
        transaction.on_commit(lambda: cancel_run.delay(locked.pk, who))
    return locked


# ------------------------------------------------------------------------------- job control
def run_paths(run_id: int) -> tuple[Path, Path]:
    """(workdir, log_path) of a run on the machine that runs local jobs."""
    workdir = Path(settings.FIPO_RUNS_DIR) / str(run_id)
    return workdir, workdir / "run.log"


def _launch_spec(run: Run, token: str) -> Any:
    from worker.launchers import LaunchSpec

    workdir, log_path = run_paths(run.pk)
    return LaunchSpec(run_id=str(run.pk), config=run.config, server_url=settings.FIPO_SERVER_URL, token=token,
                      workdir=workdir, log_path=log_path)


def run_start_job(run_id: int) -> bool:
    """The ``launch_run`` task: issue the run token, queued -> starting, start the job through the
    run's launcher and record its handle; a ``LauncherError`` fails the run with its message.

    Returns False when there was nothing to do (run gone, or no longer queued: e.g. cancelled, or a
    redelivered task), which makes the task safe to run twice.
    """
    from worker.launchers import LauncherError, get_launcher

    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RunStatus.QUEUED:
            return False
        run.token_hash = token_hash(token)
        run.save(update_fields=["token_hash", "updated_at"])
        _transition_locked(run=run, to=RunStatus.STARTING, reason=f"starting with the {run.launcher} launcher")
    spec = _launch_spec(run, token)
    try:
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
    from worker.launchers import LauncherError, get_launcher

    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.status in FINAL_STATUSES:
        return False
    note = ""
    if run.handle:
        try:
            state = get_launcher(run.launcher).cancel(run.handle, grace_s=settings.FIPO_CANCEL_GRACE_S)
            note = f" (job {state.state}{'' if state.exit_code is None else f', exit code {state.exit_code}'})"
        except LauncherError as exc:
            note = f" (stopping the job failed: {exc})"
    elif run.status == RunStatus.STARTING:
        return False  # no handle yet: the launch task records it, sees the request and calls us again
    who = f" by {requested_by}" if requested_by else ""
    return run_transition(run_id=run_id, to=RunStatus.CANCELLED, reason=f"cancelled{who}{note}",
                          expected=ACTIVE_STATUSES)


def runs_reap_lost(*, now: datetime | None = None) -> list[int]:
    """The ``reap_lost_runs`` beat task: starting/running runs without an event for
    ``FIPO_HEARTBEAT_TIMEOUT_S`` become ``lost`` (or ``failed`` when the launcher says the job died
    with an error, ``succeeded`` when it says the job succeeded: an OpenRLHF job's trainer cannot report
    its own end, so Ray's terminal state is the run's). Returns the ids it changed."""
    from worker.launchers import LauncherError, get_launcher

    now = now or timezone.now()
    timeout = timedelta(seconds=settings.FIPO_HEARTBEAT_TIMEOUT_S)
    stale = list(
        Run.objects.filter(status__in=[RunStatus.STARTING, RunStatus.RUNNING])
        .annotate(seen=Coalesce("last_heartbeat", "status_changed_at"))
        .filter(seen__lt=now - timeout)
    )
    changed = []
    for run in stale:
        silent_for = int((now - (run.last_heartbeat or run.status_changed_at)).total_seconds())
        to, reason = RunStatus.LOST, f"no heartbeat for {silent_for} s"
        if run.handle:
            try:
                job = get_launcher(run.launcher).poll(run.handle)
            except LauncherError as exc:
                reason += f"; launcher poll failed: {exc}"
            else:
                if job.state in {"failed", "stopped"}:
                    to = RunStatus.FAILED
                    reason = f"job {job.state}" + (f" with exit code {job.exit_code}" if job.exit_code is not None else "")
                    reason += f": {job.message}" if job.message else ""
                elif job.state == "succeeded":
                    to, reason = RunStatus.SUCCEEDED, "job succeeded (reported by the launcher)"
                else:
                    reason += f"; launcher says the job is {job.state}"
        with transaction.atomic():
            locked = run_lock(run.pk)
            last = locked.last_heartbeat or locked.status_changed_at
            if locked.status in {RunStatus.STARTING, RunStatus.RUNNING} and last < now - timeout:
                _transition_locked(run=locked, to=to, reason=reason)
                changed.append(run.pk)
    return changed
