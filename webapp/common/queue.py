"""Queueing a Celery task by its registered name, once the current transaction commits.

Why by name: the tasks of an app call its services, so a service that imported its tasks module to
queue one would close an import cycle (``services -> tasks -> services``). Each app's ``enqueue``
module names its tasks once; the tasks modules register under those names, and services queue
through the ``enqueue`` module: every dependency points one way.

Why not ``app.send_task(name)``: it ignores ``task_always_eager`` (``CELERY_TASK_ALWAYS_EAGER``, and
the tests that run a job inline), while ``Task.delay`` honours it. So the registered task is looked
up and delayed; a process that has not imported the tasks modules yet (a web process: only the
worker imports them at start) runs the same autodiscovery as the worker first.
"""

from __future__ import annotations

from typing import Any

from celery import Task, current_app
from django.db import transaction


def registered_task(name: str) -> Task:
    """The task registered under ``name`` in the current Celery app (``worker.celery_app``).

    Raises ``celery.exceptions.NotRegistered`` when no tasks module of an installed app defines it."""
    app = current_app
    if name not in app.tasks:
        app.loader.import_default_modules()  # what a worker does at start: import every app's tasks
    return app.tasks[name]


def enqueue_on_commit(name: str, *args: Any) -> None:
    """Queue task ``name`` with ``args`` after the current transaction commits (at once outside one),
    so the worker never reads a row the request has not committed yet, and a rolled-back request
    queues nothing."""
    transaction.on_commit(lambda: registered_task(name).delay(*args))
