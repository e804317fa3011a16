"""Websocket routes (mounted by webapp.asgi)."""

from django.urls import path

from webapp.tracking import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunStreamConsumer.as_asgi()),
    path("ws/runs/", consumers.UserRunsConsumer.as_asgi()),
]
