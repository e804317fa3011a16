"""The Ray Jobs client's retries (``RayJobsClient.request``, through tenacity): transport errors and
502/503/504 are tried again, ``attempts`` times in all, waiting ``backoff_s`` and then twice as long
each time; any other answer is returned at once; giving up is a ``LauncherError`` with the reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from worker.launchers.base import LauncherError
from worker.launchers.ray import RayJobsClient


def _client(monkeypatch: pytest.MonkeyPatch, answers: list[Any], **kw: Any) -> tuple[RayJobsClient, list[float]]:
    """A client whose HTTP calls get ``answers`` in turn (an int is a status, an exception is raised)."""
    sleeps: list[float] = []
    calls = iter(answers)

    def request(method: str, url: str, **_: Any) -> httpx.Response:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={}, request=httpx.Request(method, url))

    monkeypatch.setattr(httpx, "request", request)
    return RayJobsClient("http://head.example:8265", sleep=sleeps.append, **kw), sleeps


def test_retries_with_exponential_backoff_then_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    client, sleeps = _client(monkeypatch, [httpx.ConnectError("refused"), 503, httpx.ReadTimeout("slow"), 200],
                             attempts=5, backoff_s=0.5)
    assert client.request("GET", "/api/jobs/").status_code == 200
    assert sleeps == [0.5, 1.0, 2.0]


def test_other_answers_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    client, sleeps = _client(monkeypatch, [404], attempts=5)
    assert client.request("GET", "/api/jobs/x").status_code == 404
    assert sleeps == []


@pytest.mark.parametrize(("last", "reason"), [(502, "HTTP 502"), (httpx.ConnectError("refused 10.0.0.7"), "no connection"),
                                              (httpx.ConnectTimeout("t"), "no answer in time")])
def test_gives_up_after_the_attempts_with_the_last_reason(monkeypatch: pytest.MonkeyPatch, last: Any,
                                                          reason: str) -> None:
    client, sleeps = _client(monkeypatch, [503, 503, last], attempts=3, backoff_s=0.25)
    with pytest.raises(LauncherError) as caught:
        client.request("POST", "/api/jobs/", {"entrypoint": "true"})
    assert str(caught.value) == f"the Ray head could not be reached after 3 attempts ({reason})"
    assert sleeps == [0.25, 0.5]


def test_one_attempt_never_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    client, sleeps = _client(monkeypatch, [504], attempts=1)
    with pytest.raises(LauncherError, match=r"after 1 attempts \(HTTP 504\)"):
        client.request("GET", "/api/jobs/x/logs")
    assert sleeps == []
