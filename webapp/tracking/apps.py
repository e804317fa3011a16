from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "webapp.tracking"
    label = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from webapp.tracking import receivers  # noqa: F401  (membership changes -> websocket re-checks)
