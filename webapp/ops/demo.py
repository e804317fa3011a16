"""What ``runstack`` does through the run services: launch the demo run, stop this stack's jobs.

Kept out of the command module so both steps are plain functions over ids, through the same
guarded services the API uses (no status is written here).
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
from django.utils import timezone

from webapp.accounts.models import Team, User
from webapp.runs.models import ACTIVE_STATUSES, Run
from webapp.runs.services import run_cancel_job, run_create, run_launch
from worker.launchers import LauncherError
from worker.launchers.local import LocalHandle


def launch_demo_run(*, username: str, team: str, preset: str) -> int:
    """Create a run of ``preset`` as ``username`` in ``team``, launch it, and return its id."""
    user = User.objects.get(username=username)
    team_row = Team.objects.get(name=team)
    run = run_create(user=user, team_id=team_row.pk, name=f"{preset} {timezone.now():%Y-%m-%d %H:%M}", preset=preset)
    run_launch(run=run, user=user)
    return run.pk


def _descendant_pids(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def cancel_jobs_started_by(worker_pid: int) -> Iterator[str]:
    """Cancel the active local runs whose job is a descendant of ``worker_pid``; yield one line each.

    Only this stack's jobs: with a shared database other stacks' runs are left alone. The cancel
    goes through ``run_cancel_job`` (SIGTERM, SIGKILL after ``FIPO_CANCEL_GRACE_S``, then -> cancelled), the
    same path as the cancel task, so the run records why it stopped.
    """
    mine = _descendant_pids(worker_pid)
    if not mine:
        return
    for run in Run.objects.filter(status__in=ACTIVE_STATUSES, launcher="local").exclude(handle=None):
        try:
            pid = LocalHandle.parse(run.handle).pid
        except LauncherError:
            continue
        if pid in mine:
            run_cancel_job(run.pk, requested_by="runstack (the stack was stopped)")
            yield f"cancelled run {run.pk} (its job was started by this stack)"
