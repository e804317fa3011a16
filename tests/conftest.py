"""Shared fixtures for every test area: factories for users, teams and runs, API clients, and an
isolated Channels layer. Add fixtures at the end of the section they belong to; keep them small.

Database modes: with ``DATABASE_URL``/``REDIS_URL`` set (CI) the tests run on PostgreSQL and the
Redis channel layer; without them, on SQLite and the in-memory layer.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import factory
import pytest
from factory.django import DjangoModelFactory


# ----------------------------------------------------------------------------- factories
def _cpu_demo_config() -> dict[str, Any]:
    from fipo_engine.config import preset

    return preset("cpu-demo").model_dump(mode="json")


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = "accounts.Team"
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(DjangoModelFactory):
    class Meta:
        model = "accounts.User"
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    password = factory.django.Password("pw")


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = "accounts.Membership"

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = "member"


class RunFactory(DjangoModelFactory):
    """A bare run row (no transitions): use ``webapp.runs.services.run_create`` when the lifecycle
    history matters."""

    class Meta:
        model = "runs.Run"

    name = factory.Sequence(lambda n: f"run-{n}")
    team = factory.SubFactory(TeamFactory)
    created_by = factory.SubFactory(UserFactory)
    config = factory.LazyFunction(_cpu_demo_config)
    schema_version = 1
    preset = "cpu-demo"
    launcher = "local"


# ----------------------------------------------------------------------- users and teams
@pytest.fixture
def team(db: Any) -> Any:
    return TeamFactory(name="alpha")


@pytest.fixture
def other_team(db: Any) -> Any:
    return TeamFactory(name="beta")


@pytest.fixture
def member_of(db: Any) -> Callable[..., Any]:
    """``member_of(team, role="member", username=None)`` -> a new user with that role in the team."""

    def make(team: Any, role: str = "member", username: str | None = None) -> Any:
        user = UserFactory(username=username) if username else UserFactory()
        MembershipFactory(user=user, team=team, role=role)
        return user

    return make


@pytest.fixture
def owner(team: Any, member_of: Callable[..., Any]) -> Any:
    return member_of(team, "owner", "olivia")


@pytest.fixture
def member(team: Any, member_of: Callable[..., Any]) -> Any:
    return member_of(team, "member", "alice")


@pytest.fixture
def viewer(team: Any, member_of: Callable[..., Any]) -> Any:
    return member_of(team, "viewer", "vera")


@pytest.fixture
def outsider(other_team: Any, member_of: Callable[..., Any]) -> Any:
    """A member of another team: every run of ``team`` must be invisible to them."""
    return member_of(other_team, "owner", "oscar")


# ------------------------------------------------------------------------------ clients
@pytest.fixture
def api_client() -> Any:
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def client_for() -> Callable[..., Any]:
    """``client_for(user, csrf=False, token=False)`` -> an APIClient logged in by session (CSRF
    enforced when ``csrf``) or by a personal API token (``token=True``)."""
    from rest_framework.test import APIClient

    def make(user: Any, *, csrf: bool = False, token: bool = False) -> Any:
        client = APIClient(enforce_csrf_checks=csrf)
        if token:
            from webapp.accounts.services import api_token_create

            _, raw = api_token_create(user=user, name="tests")
            client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        else:
            client.force_login(user)
        return client

    return make


# ------------------------------------------------------------------------------------ runs
@pytest.fixture
def draft_run(member: Any, team: Any) -> Any:
    """A cpu-demo draft created through the service (so it has its first transition)."""
    from webapp.runs.services import run_create

    return run_create(user=member, team_id=team.pk, name="demo", preset="cpu-demo")


@pytest.fixture
def start_run() -> Callable[[Any], str]:
    """``start_run(run) -> token``: draft/queued -> starting with a fresh run token, as the launch
    task does before it starts a job, but without starting one (for ingest tests)."""

    def start(run: Any) -> str:
        from webapp.common.auth import token_hash
        from webapp.runs.models import Run, RunStatus
        from webapp.runs.services import run_transition

        token = secrets.token_urlsafe(32)
        Run.objects.filter(pk=run.pk).update(token_hash=token_hash(token))
        if Run.objects.get(pk=run.pk).status == RunStatus.DRAFT:
            run_transition(run_id=run.pk, to=RunStatus.QUEUED, reason="tests")
        run_transition(run_id=run.pk, to=RunStatus.STARTING, reason="tests")
        run.refresh_from_db()
        return token

    return start


@pytest.fixture
def started_run(draft_run: Any, start_run: Callable[[Any], str]) -> tuple[Any, str]:
    """(run in ``starting``, its run token)."""
    token = start_run(draft_run)
    return draft_run, token


# ------------------------------------------------------------------------------ channels
@pytest.fixture(scope="session", autouse=True)
def _isolated_channel_layer() -> Iterator[None]:
    """With Redis, give this test session its own channel-layer key prefix and delete its keys at
    the end, so parallel sessions on one Redis never see each other's groups."""
    if not os.environ.get("REDIS_URL"):
        yield
        return
    from django.conf import settings

    prefix = f"fipo-test-{uuid.uuid4().hex[:12]}"
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"], "CONFIG": {**layers["default"]["CONFIG"], "prefix": prefix}}
    settings.CHANNEL_LAYERS = layers
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


# ---------------------------------------------------------------------------------- speed
@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher() -> Iterator[None]:
    """MD5 instead of PBKDF2 (~0.3 s a password on a busy 2-core machine) for every test user.
    Real deployments keep Django's default hashers; subprocess servers in tests are not affected."""
    from django.conf import settings

    if not settings.configured:
        yield
        return
    from django.contrib.auth import hashers

    original = settings.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()
    yield
    settings.PASSWORD_HASHERS = original
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()
