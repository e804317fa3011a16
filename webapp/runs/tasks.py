"""Celery tasks of runs: thin (ids in, one service call), queued with ``transaction.on_commit``.

``launch_run`` and ``cancel_run`` are idempotent (a redelivered task finds the run already moved
and does nothing), which is what makes ``acks_late`` safe.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_init

from webapp.runs import services
from webapp.tracking.stream import mark_worker_process


@worker_init.connect
def _in_worker(**_: Any) -> None:
    mark_worker_process()


@shared_task(name="webapp.runs.tasks.launch_run")
def launch_run(run_id: int) -> bool:
    return services.run_start_job(run_id)


@shared_task(name="webapp.runs.tasks.cancel_run")
def cancel_run(run_id: int, requested_by: str = "") -> bool:
    return services.run_cancel_job(run_id, requested_by=requested_by)


@shared_task(name="webapp.runs.tasks.reap_lost_runs")
def reap_lost_runs() -> list[int]:
    return services.runs_reap_lost()
