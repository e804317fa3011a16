"""Services queue Celery tasks by name (``webapp.common.queue`` through each app's ``enqueue``), so
they never import the tasks that call them; the task must still run inline under
``task_always_eager``, and only once the transaction commits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import shared_task
from celery.exceptions import NotRegistered
from django.conf import settings

from webapp.common.queue import enqueue_on_commit, registered_task
from webapp.leaderboards.enqueue import RUN_EVAL_JOB
from webapp.runs.enqueue import CANCEL_RUN, LAUNCH_RUN, REAP_LOST_RUNS

ECHO = "tests.webapp.test_queue.echo"
received: list[tuple[Any, ...]] = []


@shared_task(name=ECHO)
def echo(*args: Any) -> None:
    received.append(args)


@pytest.fixture
def eager_celery() -> Iterator[Any]:
    from worker.celery_app import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    received.clear()
    yield app
    app.conf.task_always_eager = before


@pytest.mark.django_db(transaction=True)
def test_a_task_runs_after_the_commit_and_not_after_a_rollback(eager_celery: Any) -> None:
    from django.db import transaction

    with transaction.atomic():
        enqueue_on_commit(ECHO, 1, "a")
        assert received == []  # not before the commit
    assert received == [(1, "a")]

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        enqueue_on_commit(ECHO, 2)
        raise Rollback
    assert received == [(1, "a")]


def test_the_names_are_those_the_tasks_register() -> None:
    from webapp.leaderboards import tasks as eval_tasks
    from webapp.runs import tasks as run_tasks

    for name, task in [(LAUNCH_RUN, run_tasks.launch_run), (CANCEL_RUN, run_tasks.cancel_run),
                       (REAP_LOST_RUNS, run_tasks.reap_lost_runs), (RUN_EVAL_JOB, eval_tasks.run_eval_job)]:
        assert registered_task(name) is task._get_current_object()  # @shared_task gives a proxy
    # settings cannot import the app, so the beat schedule spells the name: it must be the same one
    assert settings.CELERY_BEAT_SCHEDULE["reap-lost-runs"]["task"] == REAP_LOST_RUNS

def test_an_unknown_name_is_an_error() -> None:
    with pytest.raises(NotRegistered):
        registered_task("webapp.nowhere.tasks.nothing")
