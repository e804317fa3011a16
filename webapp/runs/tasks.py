"""Celery tasks of runs: thin (ids in, one service call), queued after the commit through
``webapp.runs.enqueue``, whose names they register under (services never import this module).

``launch_run`` and ``cancel_run`` are idempotent (a redelivered task finds the run already moved
and does nothing), which is what makes ``acks_late`` safe.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_init

from webapp.runs import services
from webapp.runs.enqueue import CANCEL_RUN, LAUNCH_RUN, REAP_LOST_RUNS
from webapp.runs.stream import mark_worker_process


@worker_init.connect
def _in_worker(**_: Any) -> None:
    mark_worker_process()


@shared_task(name=LAUNCH_RUN)
def launch_run(run_id: int) -> bool:
    return services.run_start_job(run_id)


@shared_task(name=CANCEL_RUN)
def cancel_run(run_id: int, requested_by: str = "") -> bool:
    return services.run_cancel_job(run_id, requested_by=requested_by)


@shared_task(name=REAP_LOST_RUNS)
def reap_lost_runs() -> list[int]:
    return services.runs_reap_lost()
