"""Reads of runs, always scoped to the requesting user's teams (there is no un-scoped selector,
except ``run_for_token`` which authenticates a trainer by its run token)."""

from __future__ import annotations

from pathlib import Path

from django.db.models import Q, QuerySet

from webapp.accounts.models import User
from webapp.accounts.selectors import user_can_write, user_team_ids
from webapp.common.auth import token_hash
from webapp.common.errors import NotFound, PermissionDeniedError
from webapp.runs.models import ACTIVE_STATUSES, RESUMABLE_STATUSES, Checkpoint, Run, RunStatus
from worker.launchers import LauncherError, get_launcher


def run_list(*, user: User, team_id: int | None = None, status: str | None = None,
             q: str | None = None) -> QuerySet[Run]:
    """The user's runs, newest first, optionally filtered by team, status and a name search."""
    qs = Run.objects.filter(team_id__in=user_team_ids(user=user)).select_related("team", "created_by")
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if status:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(preset__icontains=q))
    return qs.order_by("-created_at", "-id")


def run_get(*, user: User, run_id: int) -> Run:
    """One run of the user's teams; another team's run (or none) is ``NotFound``, never 403."""
    run = (
        Run.objects.filter(pk=run_id, team_id__in=user_team_ids(user=user))
        .select_related("team", "created_by")
        .first()
    )
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def access_run_write(*, user: User, run: Run) -> None:
    """Raise unless the user may change the run (owner or member of its team; viewers read only)."""
    if not user_can_write(user=user, team_id=run.team_id):
        raise PermissionDeniedError("viewers cannot change runs")


def run_can_launch(*, run: Run, can_write: bool) -> bool:
    return can_write and run.status == RunStatus.DRAFT


def run_can_cancel(*, run: Run, can_write: bool) -> bool:
    return can_write and run.status in ACTIVE_STATUSES


def run_for_token(*, token: str) -> Run | None:
    """The run a run token was issued for (any status: the ingest view refuses finished runs)."""
    return Run.objects.filter(token_hash=token_hash(token)).first()


def run_can_resume(*, run: Run, can_write: bool, checkpoints: list[Checkpoint] | None = None) -> bool:
    """Whether the run page offers Resume (the service re-checks, including that the job is gone).
    ``checkpoints``: the run's ``run_checkpoints`` when the caller has them already."""
    if not (can_write and run.status in RESUMABLE_STATUSES and launcher_can_resume(run.launcher)):
        return False
    return bool(run_checkpoints(run=run) if checkpoints is None else checkpoints)


def launcher_can_resume(name: str) -> bool:
    """Whether the launcher can restart a job from its run directory (``fipo train --resume``)."""
    try:
        return bool(getattr(get_launcher(name), "can_resume", False))
    except LauncherError:
        return False


def _local_path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def run_checkpoints(*, run: Run) -> list[Checkpoint]:
    """The run's checkpoints, oldest first, one per directory (the latest report of it).

    For jobs whose run directory is on this machine (launchers that can resume, e.g. ``local``)
    only those whose directory still exists: the trainer's rotation
    (``trainer.keep_checkpoints``) deletes old ones after reporting them, and a listed checkpoint
    must be one a resume or an evaluation can actually use.
    """
    latest: dict[str, Checkpoint] = {}
    for checkpoint in Checkpoint.objects.filter(run=run).order_by("step", "id"):
        latest.pop(checkpoint.uri, None)
        latest[checkpoint.uri] = checkpoint
    found = list(latest.values())
    if launcher_can_resume(run.launcher):
        found = [c for c in found if _local_path(c.uri).is_dir()]
    return sorted(found, key=lambda c: (c.step, c.id))
