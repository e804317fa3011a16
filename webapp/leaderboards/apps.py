from django.apps import AppConfig


class LeaderboardsConfig(AppConfig):
    name = "webapp.leaderboards"
    label = "leaderboards"
    default_auto_field = "django.db.models.BigAutoField"
