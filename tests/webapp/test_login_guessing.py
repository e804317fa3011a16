"""Issue 14, item 4: password guessing on every login form, whatever X-Forwarded-For says.

Counters live in the cache (Redis in CI, shared between test sessions), so each test uses its own
addresses and usernames."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(member_of: Any, team: Any, settings: Any) -> Any:
    settings.FIPO_LOGIN_MAX_ATTEMPTS = 3
    user = member_of(team, "owner", f"victim-{uuid.uuid4().hex[:8]}")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def _ip() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_the_login_pages_are_throttled(victim: Any, url: str) -> None:
    client, ip = Client(), _ip()
    for _ in range(3):
        wrong = client.post(url, {"username": victim.username, "password": "guess"}, REMOTE_ADDR=ip)
        assert wrong.status_code == 200
    right = client.post(url, {"username": victim.username, "password": "pw"}, REMOTE_ADDR=ip)
    assert right.status_code == 429 and right["Retry-After"]
    assert "_auth_user_id" not in client.session  # the right password does not help once blocked


def test_a_rotating_forwarded_for_does_not_reset_the_count(victim: Any) -> None:
    client, ip = Client(), _ip()
    for i in range(3):
        client.post("/login/", {"username": victim.username, "password": "guess"}, REMOTE_ADDR=ip,
                    HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    blocked = client.post("/login/", {"username": victim.username, "password": "pw"}, REMOTE_ADDR=ip,
                          HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert blocked.status_code == 429


def test_failures_per_username_are_capped_across_addresses(victim: Any, settings: Any) -> None:
    settings.FIPO_LOGIN_MAX_PER_USERNAME = 4
    client = Client()
    for _ in range(4):  # one guess from each of four addresses: under the per-address limit each time
        client.post("/api/v1/auth/token", {"username": victim.username, "password": "guess"},
                    content_type="application/json", REMOTE_ADDR=_ip())
    blocked = client.post("/api/v1/auth/token", {"username": victim.username, "password": "pw"},
                          content_type="application/json", REMOTE_ADDR=_ip())
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "throttled"


def test_a_trusted_proxy_forwards_the_client_address(victim: Any, settings: Any) -> None:
    from django.test import RequestFactory

    from webapp.common.throttle import client_ip

    settings.FIPO_TRUSTED_PROXIES = ["10.0.0.0/8"]
    factory = RequestFactory()
    via_proxy = factory.post("/login/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7, 10.9.9.9")
    assert client_ip(via_proxy) == "198.51.100.7"  # right-most untrusted hop; 1.1.1.1 was the client's claim
    direct = factory.post("/login/", REMOTE_ADDR="198.51.100.8", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert client_ip(direct) == "198.51.100.8"  # not from a proxy: the header is ignored
    assert client_ip(factory.post("/login/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="junk")) == "10.1.2.3"
