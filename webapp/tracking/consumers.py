"""Websocket consumers (being written)."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class RunStreamConsumer(AsyncJsonWebsocketConsumer):
    pass


class UserRunsConsumer(AsyncJsonWebsocketConsumer):
    pass
