"""Issue 14, item 5: one team's load must not break another's.

Ingest requests carry at most FIPO_INGEST_MAX_POINTS metric values (413 naming the limit), each
run's trainer gets at most FIPO_INGEST_MAX_REQUESTS_PER_S requests per second (429 + Retry-After),
and a request that finds the database locked answers 503 + Retry-After, never 500."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from webapp.runs.models import Run
from webapp.tracking.models import MetricPoint

pytestmark = pytest.mark.django_db


def _ingest(run: Run, token: str, events: list[dict[str, Any]]) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.generic("POST", f"/api/v1/runs/{run.pk}/events", json.dumps(events),
                          content_type="application/json")


def test_a_batch_over_the_points_cap_is_413_with_the_limit(started_run: tuple[Run, str], settings: Any) -> None:
    settings.FIPO_INGEST_MAX_POINTS = 1000
    run, token = started_run
    events = [{"seq": i + 1, "type": "metric", "step": i, "values": {f"m{j}": 0.5 for j in range(100)}}
              for i in range(11)]
    response = _ingest(run, token, events)
    assert response.status_code == 413
    assert "1000" in response.json()["error"]["message"] and "1100" in response.json()["error"]["message"]
    assert MetricPoint.objects.count() == 0  # nothing half-written
    assert _ingest(run, token, events[:10]).status_code == 200  # at the cap: accepted


def test_each_run_is_rate_limited_on_its_own(started_run: tuple[Run, str], settings: Any) -> None:
    settings.FIPO_INGEST_MAX_REQUESTS_PER_S = 1  # 10 requests per 10 s window
    run, token = started_run
    answers = [_ingest(run, token, []) for _ in range(25)]  # spans at most two windows
    codes = [a.status_code for a in answers]
    assert codes[:10] == [200] * 10 or codes.count(200) <= 20, codes
    limited = next(a for a in answers if a.status_code == 429)
    assert 1 <= int(limited["Retry-After"]) <= 10 and "per second" in limited.json()["error"]["message"]
    # made-up tokens neither pass nor use up the trainer's budget: they are 401 in buckets of their own
    assert _ingest(run, secrets.token_urlsafe(8), []).status_code == 401


@pytest.mark.parametrize("message", ["database is locked", "canceling statement due to lock timeout"])
def test_a_locked_database_is_503_with_retry_after(client_for: Any, member: Any, team: Any, monkeypatch: Any,
                                                   message: str) -> None:
    from webapp.runs import services

    def locked(**kwargs: Any) -> Any:
        raise OperationalError(message)

    monkeypatch.setattr(services, "run_create", locked)
    response = client_for(member).post("/api/v1/runs/", {"name": "x", "team": team.pk}, format="json")
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "database_busy"


def test_a_locked_database_on_ingest_is_503(started_run: tuple[Run, str], monkeypatch: Any) -> None:
    from webapp.tracking import services

    def locked(**kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "events_ingest_with_token", locked)
    run, token = started_run
    response = _ingest(run, token, [])
    assert response.status_code == 503 and response["Retry-After"]
