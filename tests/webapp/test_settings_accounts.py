"""Settings read from the environment (both deployment shapes, production guards), the bootstrap
command, and the login throttle helper."""

from __future__ import annotations

import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import RequestFactory

from webapp.accounts.models import Membership, Team, User
from webapp.common.throttle import login_blocked, login_failed, login_succeeded


def test_embedded_default_needs_no_services(load: Any, tmp_path: Path) -> None:
    s = load()
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASES"]["default"]["NAME"] == str(tmp_path / "var" / "db.sqlite3")
    assert (tmp_path / "var").is_dir()
    assert s["CELERY_BROKER_URL"] == f"sqla+sqlite:///{tmp_path / 'var' / 'celery-broker.sqlite3'}"
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
    assert s["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert s["DEBUG"] is True and s["FIPO_SERVER_URL"] == "http://127.0.0.1:8000"
    assert s["FIPO_RUNS_DIR"] == tmp_path / "var" / "runs"
    beat = s["CELERY_BEAT_SCHEDULE"]["reap-lost-runs"]
    assert beat["task"] == "webapp.runs.tasks.reap_lost_runs" and beat["schedule"].total_seconds() == 30
    assert s["CELERY_TASK_SERIALIZER"] == "json" and s["CELERY_TASK_TIME_LIMIT"] > s["CELERY_TASK_SOFT_TIME_LIMIT"]


def test_empty_service_urls_mean_the_embedded_default(load: Any, tmp_path: Path) -> None:
    """`DATABASE_URL=` (as an .env template or `env DATABASE_URL= make run` leaves it) is unset, like
    every other variable: it used to crash the settings with KeyError: 'ENGINE'."""
    s = load(DATABASE_URL="", REDIS_URL="")
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s["DATABASES"]["default"]["NAME"] == str(tmp_path / "var" / "db.sqlite3")
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"


def test_services_are_used_when_their_urls_are_set(load: Any) -> None:
    s = load(DATABASE_URL="postgres://u@db.example:5432/fipo", REDIS_URL="redis://cache.example:6379/2",
             FIPO_SERVER_URL="http://web.example/")
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert s["DATABASES"]["default"]["HOST"] == "db.example"
    assert s["CELERY_BROKER_URL"] == "redis://cache.example:6379/2"
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert s["CHANNEL_LAYERS"]["default"]["CONFIG"]["hosts"][0]["address"] == "redis://cache.example:6379/2"
    assert s["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert s["FIPO_SERVER_URL"] == "http://web.example"


def test_production_refuses_to_boot_without_a_secret_or_with_debug(load: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        load(DJANGO_ENV="production")
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        load(DJANGO_ENV="production", DJANGO_SECRET_KEY="s" * 50, DEBUG="1")
    s = load(DJANGO_ENV="production", DJANGO_SECRET_KEY="s" * 50, ALLOWED_HOSTS="fipo.example")
    assert s["DEBUG"] is False and s["SECRET_KEY"] == "s" * 50 and s["ALLOWED_HOSTS"] == ["fipo.example"]
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"]
    assert "Manifest" in s["STORAGES"]["staticfiles"]["BACKEND"]
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        load(DEBUG="maybe")
    with pytest.raises(ImproperlyConfigured, match="DJANGO_ENV"):
        load(DJANGO_ENV="staging")


@pytest.mark.django_db
def test_bootstrap_is_idempotent(client: Any) -> None:
    out = StringIO()
    call_command("bootstrap", "--username", "demo", "--password", "pw1", "--team", "demo", stdout=out)
    assert "created" in out.getvalue()
    call_command("bootstrap", "--username", "demo", "--password", "pw1", "--team", "demo", stdout=StringIO())
    assert (User.objects.count(), Team.objects.count(), Membership.objects.count()) == (1, 1, 1)
    assert Membership.objects.get().role == "owner"
    call_command("bootstrap", "--username", "demo", "--password", "pw2", "--team", "demo", "--role", "viewer",
                 stdout=StringIO())
    assert Membership.objects.get().role == "viewer" and Membership.objects.count() == 1
    assert client.login(username="demo", password="pw2") and not client.login(username="demo", password="pw1")


def test_login_throttle_helper(settings: Any) -> None:
    settings.FIPO_LOGIN_MAX_ATTEMPTS = 2
    # A fresh client address per run: with Redis the counters outlive the test (they expire).
    request = RequestFactory().post("/login/", REMOTE_ADDR=f"test-{uuid.uuid4().hex}")
    user = "throttle-test-user"
    assert login_blocked(request, user) == 0
    login_failed(request, user)
    assert login_blocked(request, user) == 0
    login_failed(request, user)
    assert login_blocked(request, user) == settings.FIPO_LOGIN_WINDOW_S
    assert login_blocked(request, "someone-else") == 0  # per username...
    login_succeeded(request, user)
    assert login_blocked(request, user) == 0
    for i in range(10):  # ...and a looser cap per IP over all usernames
        login_failed(request, f"spray-{i}")
    assert login_blocked(request, "fresh-name") > 0
