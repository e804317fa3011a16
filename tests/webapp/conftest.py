"""Fixtures shared by the webapp tests."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

import webapp.settings as live_settings

SETTINGS_FILE = Path(live_settings.__file__)
# The variables that choose a deployment shape; each settings evaluation starts with none of them set.
ENV_NAMES = ("DJANGO_ENV", "DEBUG", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS",
             "CELERY_BROKER_URL", "FIPO_SERVER_URL", "FIPO_RUNS_DIR")


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``load(**env)`` -> the settings module's globals evaluated under exactly that environment."""

    def run(**env: str) -> dict[str, Any]:
        for name in ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("FIPO_VAR_DIR", str(tmp_path / "var"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return run
