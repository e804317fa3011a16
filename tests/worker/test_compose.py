"""docker-compose.yml describes production: postgres, redis, web, worker, beat, one app image.

No Docker daemon is needed: the file is parsed and its commands are checked against the code
(the modules they name exist and build the app they should).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_of_the_production_shape(compose: dict) -> None:
    assert {"postgres", "redis", *APP_SERVICES} <= set(compose["services"])


def test_the_app_image_is_declared_once_and_reused(compose: dict) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert text.count("build:") == 1 and "<<: *app" in text
    images = {compose["services"][name]["image"] for name in APP_SERVICES}
    builds = {compose["services"][name]["build"] for name in APP_SERVICES}
    assert len(images) == 1 and builds == {"."}
    envs = [compose["services"][name]["environment"] for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs)


def test_production_settings_come_from_the_environment(compose: dict) -> None:
    env = compose["services"]["web"]["environment"]
    assert env["DJANGO_ENV"] == "production"
    assert env["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")  # refuses to start without it
    assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_commands_name_real_entry_points(compose: dict) -> None:
    web = compose["services"]["web"]["command"]
    assert web[0] == "daphne" and web[-1] == "webapp.asgi:application"
    for name in ("worker", "beat"):
        command = compose["services"][name]["command"]
        assert command[:3] == ["celery", "-A", "worker.celery_app"] and command[3] == name
    celery_app = importlib.import_module("worker.celery_app")
    assert celery_app.app.main == "fipo"
    assert "reap-lost-runs" in celery_app.app.conf.beat_schedule
    # Every app process waits for healthy services and for the migrations.
    for name in ("web", "worker", "beat"):
        deps = compose["services"][name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def test_dockerfile_runs_unprivileged_with_the_web_server_by_default() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER fipo\n" in text and "webapp.asgi:application" in text
    assert "collectstatic" in text
