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

__all__ = ["app"]
