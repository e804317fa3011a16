"""The tracking protocol's JSON Schema and the channel catalog as the API serves them."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from fipo_engine import token_channels
from fipo_engine.tracking import protocol

pytestmark = pytest.mark.django_db


def test_the_schema_and_the_channel_catalog_are_served(client_for: Any, member: Any) -> None:
    client = client_for(member)
    schema = client.get("/api/v1/tracking/schema.json")
    assert schema.status_code == 200 and schema.json() == protocol.json_schema()
    channels = client.get("/api/v1/tracking/channels").json()["channels"]
    assert [c["name"] for c in channels] == list(token_channels.NAMES)
    assert {"label", "meaning", "unit", "scale", "neutral", "palette", "colour", "position"} <= set(channels[0])


def test_they_need_a_login_like_the_rest_of_the_api() -> None:
    for path in ("/api/v1/tracking/schema.json", "/api/v1/tracking/channels"):
        assert APIClient().get(path).status_code in (401, 403)
