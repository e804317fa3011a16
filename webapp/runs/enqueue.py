"""The Celery tasks of runs, by name: what services queue, and what ``tasks`` registers.

Services import this module, never ``webapp.runs.tasks`` (which imports the services); see
``webapp.common.queue`` for why a name and not the task object.
"""

from __future__ import annotations

from webapp.common.queue import enqueue_on_commit

LAUNCH_RUN = "webapp.runs.tasks.launch_run"
CANCEL_RUN = "webapp.runs.tasks.cancel_run"
REAP_LOST_RUNS = "webapp.runs.tasks.reap_lost_runs"  # a beat task (settings.CELERY_BEAT_SCHEDULE)


def launch_run_on_commit(run_id: int) -> None:
    """After the commit, ``launch_run`` starts the queued run's job (``services.run_start_job``)."""
    enqueue_on_commit(LAUNCH_RUN, run_id)


def cancel_run_on_commit(run_id: int, requested_by: str) -> None:
    """After the commit, ``cancel_run`` stops the run's job (``services.run_cancel_job``)."""
    enqueue_on_commit(CANCEL_RUN, run_id, requested_by)
