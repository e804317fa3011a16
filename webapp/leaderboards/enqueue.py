"""The Celery task of leaderboards, by name: what ``jobs`` queues, and what ``tasks`` registers.

``jobs`` imports this module, never ``webapp.leaderboards.tasks`` (which imports ``jobs``); see
``webapp.common.queue`` for why a name and not the task object.
"""

from __future__ import annotations

from webapp.common.queue import enqueue_on_commit

RUN_EVAL_JOB = "webapp.leaderboards.tasks.run_eval_job"


def run_eval_job_on_commit(job_id: int) -> None:
    """After the commit, ``run_eval_job`` runs the queued eval job (``jobs.eval_job_run``)."""
    enqueue_on_commit(RUN_EVAL_JOB, job_id)
