from __future__ import annotations

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Makes ``worker.celery_app`` the current Celery app in every Django process.

    Without it, a web process that queues a task before anything imported the Celery app would
    send it through Celery's default app (an AMQP broker that does not exist here).
    """

    name = "webapp.ops"
    label = "ops"

    def ready(self) -> None:
        import worker.celery_app  # noqa: F401
