"""``ThrottledLoginView``: the login page base class that applies the failed-attempt throttle."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.http import HttpResponse
from django.urls import path

from webapp.common.throttle import ThrottledLoginView


class _PlainLogin(ThrottledLoginView):
    """The view under test, rendering without a template (the real page is the dashboard's)."""

    def render_to_response(self, context: dict[str, Any], **kwargs: Any) -> HttpResponse:
        errors = " ".join(context["form"].non_field_errors())
        return HttpResponse(errors, status=kwargs.get("status", 200))


urlpatterns = [path("t-login/", _PlainLogin.as_view(next_page="/after/"), name="t-login")]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def test_failures_block_then_the_window_lets_go(client: Any, member: Any, settings: Any) -> None:
    settings.FIPO_LOGIN_MAX_ATTEMPTS = 2
    address = f"test-{uuid.uuid4().hex}"  # counters outlive the test when the cache is Redis
    for _ in range(2):
        wrong = client.post("/t-login/", {"username": "alice", "password": "nope"}, REMOTE_ADDR=address)
        assert wrong.status_code == 200 and "correct username and password" in wrong.content.decode()
    blocked = client.post("/t-login/", {"username": "alice", "password": "pw"}, REMOTE_ADDR=address)
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.content.decode()
    assert int(blocked["Retry-After"]) == settings.FIPO_LOGIN_WINDOW_S
    assert "_auth_user_id" not in client.session  # a blocked client is not logged in, even with the password
    fresh = client.post("/t-login/", {"username": "alice", "password": "pw"}, REMOTE_ADDR=f"test-{uuid.uuid4().hex}")
    assert fresh.status_code == 302 and fresh["Location"] == "/after/"
    assert client.session["_auth_user_id"] == str(member.pk)
