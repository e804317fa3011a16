from django.apps import AppConfig


class LeaderboardsConfig(AppConfig):
    name = "webapp.leaderboards"
    label = "leaderboards"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every ingested `eval` event (in-training evaluation) becomes the run's entry for that step.
        from webapp.leaderboards import receivers  # noqa: F401
