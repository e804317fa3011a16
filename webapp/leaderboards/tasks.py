"""Celery tasks of leaderboards: thin (ids in, one call), queued with ``transaction.on_commit``."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from webapp.leaderboards import jobs

_LIMIT = getattr(settings, "FIPO_EVAL_TIMEOUT_S", 6 * 3600)


@shared_task(name="webapp.leaderboards.tasks.run_eval", time_limit=_LIMIT + 60, soft_time_limit=_LIMIT + 30)
def run_eval(run_id: int, benchmark: str, step: int, options: dict[str, Any] | None = None) -> int | None:
    """Evaluate a run's checkpoint with ``fipo eval`` and record the result (``jobs.eval_job_run``)."""
    return jobs.eval_job_run(run_id=run_id, benchmark=benchmark, step=step, options=options or {})
