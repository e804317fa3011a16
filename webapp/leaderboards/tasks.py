"""Celery tasks of leaderboards: thin (ids in, one call), queued after the commit through
``webapp.leaderboards.enqueue``, whose name they register under (``jobs`` never imports this module)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from webapp.leaderboards import jobs
from webapp.leaderboards.enqueue import RUN_EVAL_JOB

# The job follows `fipo eval` for at most FIPO_EVAL_TIMEOUT_S itself; Celery's limits are a backstop.
_LIMIT = settings.FIPO_EVAL_TIMEOUT_S


@shared_task(name=RUN_EVAL_JOB, time_limit=_LIMIT + 60, soft_time_limit=_LIMIT + 30)
def run_eval_job(job_id: int) -> int | None:
    """Run one eval job (``jobs.eval_job_run``): launch ``fipo eval``, follow it, record the entry."""
    return jobs.eval_job_run(job_id)
