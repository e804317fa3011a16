"""The settings reader (``webapp/settings.py``'s ``env``, django-environ with this deployment's
rules): an empty variable is unset, values are literal, a malformed value is an error that names
the variable. ``test_settings_accounts.py`` covers the deployment shapes built from it."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

import webapp.settings as live_settings


@pytest.mark.parametrize(("name", "value", "message"), [
    ("DEBUG", "maybe", "DEBUG must be a boolean (1/0, true/false), got 'maybe'"),
    ("SESSION_COOKIE_SECURE", "y", "SESSION_COOKIE_SECURE must be a boolean"),  # django-environ alone: True
    ("FIPO_INGEST_MAX_POINTS", "lots", "FIPO_INGEST_MAX_POINTS must be an integer, got 'lots'"),
    ("FIPO_INGEST_MAX_POINTS", "1.5", "FIPO_INGEST_MAX_POINTS must be an integer"),
    ("FIPO_WS_POLL_S", "2s", "FIPO_WS_POLL_S must be a number, got '2s'"),  # not quietly 2.0
    ("FIPO_RAY_HEADS", "{not json", "FIPO_RAY_HEADS must be JSON: "),
])
def test_a_malformed_value_names_the_variable(load: Any, name: str, value: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        load(**{name: value})
    assert str(caught.value).startswith(message)


def test_values_are_typed_and_empty_means_unset(load: Any) -> None:
    s = load(DEBUG="off", FIPO_WS_POLL_S="1e-1", FIPO_INGEST_MAX_POINTS="", FIPO_CHART_MAX_POINTS="500",
             ALLOWED_HOSTS=" a.example , b.example,, ", FIPO_DATA_ROOTS='{"*": ["/data"]}',
             FIPO_EVAL_TIMEOUT_S="60")
    assert s["DEBUG"] is False
    assert s["FIPO_WS_POLL_S"] == 0.1
    assert s["FIPO_INGEST_MAX_POINTS"] == 100_000  # empty: the default
    assert s["FIPO_CHART_MAX_POINTS"] == 500
    assert s["ALLOWED_HOSTS"] == ["a.example", "b.example"]
    assert s["FIPO_DATA_ROOTS"] == {"*": ["/data"]}
    assert s["FIPO_EVAL_TIMEOUT_S"] == 60


def test_defaults_of_settings_other_modules_read(load: Any) -> None:
    """Settings read as ``settings.X`` elsewhere are always defined (no ``getattr`` fallbacks)."""
    s = load()
    assert s["FIPO_EVAL_TIMEOUT_S"] == 6 * 3600
    assert s["FIPO_BENCHMARK_MAX_BYTES"] == 64 * 1024 * 1024


def test_a_value_is_read_literally(load: Any) -> None:
    """Django's generated secret keys may start with ``$``: not the name of another variable."""
    s = load(DJANGO_SECRET_KEY="$HOME-is-not-expanded", FIPO_CACHE_PREFIX="$x", REDIS_URL="redis://r:6379/0")
    assert s["SECRET_KEY"] == "$HOME-is-not-expanded"
    assert s["CACHES"]["default"]["KEY_PREFIX"] == "$x"


def test_the_reader_is_django_environ() -> None:
    import environ

    assert isinstance(live_settings.env, environ.Env)
    with pytest.raises(ImproperlyConfigured, match="Set the FIPO_SURELY_UNSET_VARIABLE environment variable"):
        live_settings.env.str("FIPO_SURELY_UNSET_VARIABLE")
