"""The embedded broker is prepared once by the process that starts the stack (regression: make run race)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from celery import Celery

from worker.celery_app import prepare_broker


def _queues(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM kombu_queue")]


def test_prepare_broker_creates_the_queue_row_once(tmp_path: Path) -> None:
    # Before the fix a brand-new SQLite broker had no kombu tables until two processes raced to
    # create the 'celery' queue row, and one of them died on a UNIQUE constraint.
    db = tmp_path / "broker.sqlite3"
    app = Celery("t", broker=f"sqla+sqlite:///{db}")
    assert prepare_broker(app, "celery") is True
    assert _queues(db) == ["celery"]
    assert prepare_broker(app, "celery") is True  # idempotent: a restart finds the row
    assert _queues(db) == ["celery"]


def test_prepare_broker_leaves_other_brokers_alone() -> None:
    app = Celery("t", broker="redis://127.0.0.1:1/0")  # never contacted
    assert prepare_broker(app) is False
