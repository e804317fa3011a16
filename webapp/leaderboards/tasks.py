"""Celery tasks of leaderboards: thin (ids in, one call), queued with ``transaction.on_commit``."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webapp.leaderboards import jobs

_LIMIT = getattr(settings, "FIPO_EVAL_TIMEOUT_S", 6 * 3600)


@shared_task(name="webapp.leaderboards.tasks.run_eval_job", time_limit=_LIMIT + 60, soft_time_limit=_LIMIT + 30)
def run_eval_job(job_id: int) -> int | None:
    """Run one eval job (``jobs.eval_job_run``): launch ``fipo eval``, follow it, record the entry."""
    return jobs.eval_job_run(job_id)
