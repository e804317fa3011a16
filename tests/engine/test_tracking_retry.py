"""The sender's retries, through tenacity. A batch that fails (no answer, 5xx, 408/425/429) is sent
again with exponential backoff, ``backoff_initial`` doubling up to ``backoff_max``, re-read from the
spool each time (``_Sender._send_next_batch``). After a 4xx batch, each event is posted on its own,
``backoff_initial`` apart, until it gets a real answer (``_Sender._deliver``). ``abort()`` ends any
wait at once, with no further POST."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from fipo_engine.tracking.client import _Sender
from fipo_engine.tracking.spool import Spool


class _Client:
    """Stands for ``httpx.Client``: answers single-event posts from a script, then ``default``."""

    def __init__(self, script: list[Any], default: int = 503) -> None:
        self.script, self.default, self.bodies = list(script), default, []

    def post(self, url: str, *, content: str, headers: dict[str, str]) -> httpx.Response:
        self.bodies.append(content)
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, Exception):
            raise answer
        body = {"acked_seq": 0, "rejected": []} if answer == 200 else {"error": {"code": "x", "message": "no"}}
        return httpx.Response(answer, json=body, request=httpx.Request("POST", url))


def _sender(tmp_path: Path, backoff_initial: float) -> _Sender:
    return _Sender(Spool(tmp_path), "http://server.example/api/v1/runs/7/events", "tok", max_batch_events=16,
                   max_batch_bytes=1 << 20, backoff_initial=backoff_initial, backoff_max=1.0, request_timeout=1.0)


def test_an_event_is_posted_again_until_it_gets_an_answer(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=0.01)
    client = _Client([400, httpx.ConnectError("down"), 503, 429, 200, 400])  # the batch, then event 1, then 2
    batch = [{"seq": 1, "type": "log", "text": "a"}, {"seq": 2, "type": "log", "text": "b"}]
    assert sender._deliver(client, batch) is True  # type: ignore[arg-type]
    assert len(client.bodies) == 6 and sender.acked == 2
    assert sender.stats["dropped"] == 1  # event 2's 400: refused for good


def test_abort_ends_the_wait_at_once_and_posts_nothing_more(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=30.0)
    client = _Client([400], default=503)
    batch = [{"seq": 1, "type": "log", "text": "a"}, {"seq": 2, "type": "log", "text": "b"}]
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(sender._deliver(client, batch)))  # type: ignore[arg-type]
    worker.start()
    time.sleep(0.2)  # the batch's 400, then event 1's 503: now waiting 30 s
    started = time.monotonic()
    sender.abort()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert result == [False] and len(client.bodies) == 2 and sender.acked == 0


def test_a_refused_token_stops_the_event_loop(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=0.01)
    client = _Client([400, 502, 401])
    assert sender._deliver(client, [{"seq": 1}, {"seq": 2}]) is False  # type: ignore[arg-type]
    assert sender.disabled_reason == "server answered 401" and len(client.bodies) == 3


def test_a_failing_batch_backs_off_exponentially_up_to_the_cap_and_picks_up_new_events(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=0.5)  # backoff_max=1.0
    sender.spool.append({"type": "log", "text": "a"})
    waits: list[float] = []

    def fake_wait(seconds: float | None = None) -> bool:  # the backoff's sleep, recorded instead of slept
        waits.append(float(seconds or 0))
        if len(waits) == 2:
            sender.spool.append({"type": "log", "text": "b"})  # written during the outage
        return False

    sender._abort.wait = fake_wait  # type: ignore[method-assign]
    client = _Client([503, httpx.ConnectError("down"), 503, 502, 200])
    assert sender._send_next_batch(client) is True  # type: ignore[arg-type]
    assert waits == [0.5, 1.0, 1.0, 1.0]  # doubling from backoff_initial, capped at backoff_max
    assert sender.stats["failures"] == 4 and sender.acked == 2
    assert [len(json.loads(body)) for body in client.bodies] == [1, 1, 2, 2, 2]  # the retry re-reads the spool


def test_a_refused_token_stops_the_batch_retries(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=0.01)
    sender.spool.append({"type": "log", "text": "a"})
    client = _Client([503, 401])
    assert sender._send_next_batch(client) is False  # type: ignore[arg-type]
    assert len(client.bodies) == 2 and sender.disabled_reason and sender.acked == 0


def test_nothing_to_send_is_not_a_failure(tmp_path: Path) -> None:
    sender = _sender(tmp_path, backoff_initial=0.01)
    assert sender._send_next_batch(_Client([])) is None  # type: ignore[arg-type]
    assert sender.stats["failures"] == 0
