"""The Celery application of the control plane: ``celery -A worker.celery_app worker|beat``.

Configuration comes from Django's settings (the ``CELERY_`` names in ``webapp/settings.py``), so the
broker is Redis when ``REDIS_URL`` is set and the embedded SQLite transport otherwise, with no second
place to configure it. Tasks live next to the services they call (``webapp/<app>/tasks.py``) and are
found by autodiscovery over ``INSTALLED_APPS``.

Importing this module makes ``app`` Celery's current app, which is what ``@shared_task`` binds to;
``webapp.ops`` imports it when Django starts so the web process queues tasks on the same broker.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("fipo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()



def prepare_broker(celery_app: Celery = app, queue: str | None = None) -> bool:
    """Create the embedded broker's tables and the default queue row once, before other processes start.

    kombu's SQLAlchemy transport creates its tables and queue rows lazily, with a check-then-insert.
    On a brand-new ``var/`` the web process (queueing the demo run) and the worker (consuming) can
    both insert the queue row at the same moment, and one dies on ``UNIQUE constraint failed:
    kombu_queue.name`` (seen with ``make run`` on a fresh clone). Declaring the queue here, in the one
    process that starts the others, removes the race. Returns False (and does nothing) for other
    brokers such as Redis, which need no preparation.
    """
    if not str(celery_app.conf.broker_url or "").startswith("sqla+"):
        return False
    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_declare(queue=queue or celery_app.conf.task_default_queue)
    return True


__all__ = ["app", "prepare_broker"]
