"""Websockets through the real ASGI application (webapp.asgi) and channel layer (Redis when
REDIS_URL is set, else in-memory): catch-up, live items, the reconnect invariant, isolation."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from webapp.asgi import application
from webapp.runs import stream
from webapp.runs.models import Run, RunStatus
from webapp.runs.services import run_lock, run_transition
from webapp.runs.stream import stream_append
from webapp.tracking.consumers import RunStreamConsumer
from webapp.tracking.services import events_ingest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _headers(user: Any | None, origin: str = "http://testserver") -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def _connect(path: str, user: Any | None, **kw: Any) -> tuple[WebsocketCommunicator, bool, int | None]:
    headers = await database_sync_to_async(_headers)(user, **kw)
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def _receive_until(communicator: WebsocketCommunicator, pos: int, timeout: float = 10) -> list[dict[str, Any]]:
    """Messages until one with ``pos`` (inclusive) arrives."""
    out: list[dict[str, Any]] = []
    while not out or out[-1]["pos"] < pos:
        out.append(await communicator.receive_json_from(timeout=timeout))
    return out


_CHECKPOINTS = Path(tempfile.mkdtemp(prefix="fipo-ws-test-checkpoints-"))


def _batch(seq0: int, step0: int, n: int, *, final: bool = False) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(n):
        step = step0 + i
        events.append({"seq": seq0 + len(events), "type": "metric", "step": step,
                       "values": {"reward/mean": step / 10, "actor/lr": 1e-6 * (1 + step)}})
        events.append({"seq": seq0 + len(events), "type": "sample", "step": step, "index": 0, "prompt": f"q{step}",
                       "response": "a", "reward": 1.0, "correct": True, "tokens": ["a"], "logprob": [-0.5]})
    # a checkpoint directory that exists: run pages list only those (rotation deletes old ones)
    checkpoint = _CHECKPOINTS / f"step_{step0 + n - 1:06d}"
    checkpoint.mkdir(parents=True, exist_ok=True)
    events.append({"seq": seq0 + len(events), "type": "checkpoint", "step": step0 + n - 1, "uri": str(checkpoint)})
    events.append({"seq": seq0 + len(events), "type": "log", "text": f"batch at {step0}"})
    if final:
        events.append({"seq": seq0 + len(events), "type": "status", "state": "succeeded", "message": "done"})
    return events


# ------------------------------------------------------------------- the client-side model
def _snapshot(user: Any, run_id: int) -> dict[str, Any]:
    """What a page builds from REST: status, every metric point, sample summaries, checkpoints.
    ``stream_pos`` comes from the first response, before everything else is read."""
    client = APIClient()
    client.force_authenticate(user)
    detail = client.get(f"/api/v1/runs/{run_id}/").json()
    keys = client.get(f"/api/v1/runs/{run_id}/metrics").json()["keys"]
    series = client.get(f"/api/v1/runs/{run_id}/metrics?keys={','.join(keys)}&max_points=20000").json()["series"] \
        if keys else {}
    steps = client.get(f"/api/v1/runs/{run_id}/samples/").json()["steps"]
    samples = {}
    for step in steps:
        for s in client.get(f"/api/v1/runs/{run_id}/samples/?step={step}").json()["results"]:
            samples[s["id"]] = s
    return {
        "pos": detail["stream_pos"],
        "status": detail["status"],
        "metrics": {k: dict(zip(v["step"], v["value"], strict=True)) for k, v in series.items()},
        "samples": samples,
        "checkpoints": sorted((c["step"], c["uri"]) for c in detail["checkpoints"]),
    }


def _apply(snapshot: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's reducer: fold stream items into a snapshot."""
    state = {"status": snapshot["status"], "metrics": {k: dict(v) for k, v in snapshot["metrics"].items()},
             "samples": dict(snapshot["samples"]), "checkpoints": list(snapshot["checkpoints"])}
    for item in items:
        data = item["data"]
        if item["type"] == "status":
            state["status"] = data["status"]
        elif item["type"] == "metric":
            for name, value in data["values"].items():
                state["metrics"].setdefault(name, {})[data["step"]] = value
        elif item["type"] == "sample":
            state["samples"][data["id"]] = data
        elif item["type"] == "checkpoint" and (data["step"], data["uri"]) not in state["checkpoints"]:
            state["checkpoints"] = sorted([*state["checkpoints"], (data["step"], data["uri"])])
    return state


# ---------------------------------------------------------------------------------- tests
async def test_reconnect_catch_up_equals_a_fresh_snapshot(started_run: tuple[Run, str], member: Any) -> None:
    run, _ = started_run
    await database_sync_to_async(events_ingest)(run_id=run.pk, events=_batch(1, 0, 3))
    before = await database_sync_to_async(_snapshot)(member, run.pk)
    # what happens while the client is away
    await database_sync_to_async(events_ingest)(run_id=run.pk, events=_batch(100, 3, 4, final=True))
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/?after={before['pos']}", member)
    assert connected
    head = (await database_sync_to_async(Run.objects.get)(pk=run.pk)).stream_pos
    missed = await _receive_until(communicator, head)
    assert [m["pos"] for m in missed] == list(range(before["pos"] + 1, head + 1))
    fresh = await database_sync_to_async(_snapshot)(member, run.pk)
    assert fresh["status"] == "succeeded"
    assert _apply(before, missed) == {k: v for k, v in fresh.items() if k != "pos"}
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_live_items_follow_the_catch_up_in_order(started_run: tuple[Run, str], member: Any) -> None:
    run, _ = started_run
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/?after=0", member)
    assert connected
    history = await _receive_until(communicator, 3)  # draft, queued, starting
    assert [(m["pos"], m["type"], m["data"]["status"]) for m in history] == [
        (1, "status", "draft"), (2, "status", "queued"), (3, "status", "starting")]
    await database_sync_to_async(events_ingest)(run_id=run.pk, events=_batch(1, 0, 1))
    live = await _receive_until(communicator, 8)
    assert [m["type"] for m in live] == ["status", "metric", "sample", "checkpoint", "log"]
    assert live[0]["data"]["status"] == "running" and live[1]["data"] == {
        "step": 0, "values": {"reward/mean": 0.0, "actor/lr": 1e-6}}
    assert live[2]["data"]["prompt"] == "q0" and set(live[2]["data"]) == {
        "id", "step", "index", "prompt", "reward", "correct", "length", "minibatch", "num_minibatches"}
    await communicator.disconnect()


def _append_log(run_id: int, text: str) -> None:
    with transaction.atomic():
        locked = run_lock(run_id)
        stream_append(run=locked, items=[("log", {"text": text}, None)])
        locked.save(update_fields=["stream_pos"])


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the run consumer's database read to count its calls (the list's length)."""
    reads: list[int] = []
    original = RunStreamConsumer.fetch

    async def counting(self: RunStreamConsumer, after: int) -> list[dict[str, Any]]:
        reads.append(after)
        return await original(self, after)

    monkeypatch.setattr(RunStreamConsumer, "fetch", counting)
    return reads


async def test_items_written_by_another_process_arrive_by_polling(started_run: tuple[Run, str], member: Any,
                                                                  settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's transition sends no notice the web process can hear (in-memory layer): polling."""
    settings.FIPO_WS_POLL_S = 0.2
    run, _ = started_run
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/", member)  # no after: live only
    assert connected
    monkeypatch.setattr(stream, "_send_notices", lambda groups, carried: None)  # as if written elsewhere
    await database_sync_to_async(_append_log)(run.pk, "from elsewhere")
    message = await communicator.receive_json_from(timeout=5)
    assert message == {"pos": 4, "type": "log", "data": {"text": "from elsewhere"}}
    await communicator.disconnect()


async def test_a_notice_carries_its_items_so_open_pages_do_not_read_the_database(
        started_run: tuple[Run, str], member: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """N open pages cost one notice per batch, not N database reads; what they get is exactly what a
    read returns."""
    settings.FIPO_WS_POLL_S = 60  # no poll tick during the test
    run, _ = started_run
    pages = [(await _connect(f"/ws/runs/{run.pk}/?after=2", member))[0] for _ in range(3)]
    for page in pages:
        await _receive_until(page, 3)  # the catch-up on connect is done
    reads = _count_reads(monkeypatch)
    await database_sync_to_async(events_ingest)(run_id=run.pk, events=_batch(1, 0, 2))
    head = (await database_sync_to_async(Run.objects.get)(pk=run.pk)).stream_pos
    received = [await _receive_until(page, head) for page in pages]
    assert reads == []
    stored = await database_sync_to_async(stream.stream_after)(run_id=run.pk, after=3)
    assert all(messages == stored for messages in received)
    for page in pages:
        await page.disconnect()


async def test_a_missed_notice_is_caught_up_from_the_database_in_order(
        started_run: tuple[Run, str], member: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notice that does not continue what the client has (the one before it was lost) makes the
    consumer read the gap: no item is skipped, none repeated."""
    settings.FIPO_WS_POLL_S = 60
    run, _ = started_run
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/?after=0", member)
    assert connected
    await _receive_until(communicator, 3)  # the catch-up on connect is done
    reads = _count_reads(monkeypatch)
    send = stream._send_notices
    monkeypatch.setattr(stream, "_send_notices", lambda groups, carried: None)
    await database_sync_to_async(_append_log)(run.pk, "lost notice")
    monkeypatch.setattr(stream, "_send_notices", send)
    await database_sync_to_async(_append_log)(run.pk, "next")
    messages = await _receive_until(communicator, 5)
    assert [(m["pos"], m["data"]["text"]) for m in messages] == [(4, "lost notice"), (5, "next")]
    assert reads == [3]
    await database_sync_to_async(_append_log)(run.pk, "contiguous again")
    assert (await communicator.receive_json_from(timeout=5))["pos"] == 6
    assert reads == [3]  # back on the carried path
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_user_stream_carries_status_changes_of_the_users_teams(started_run: tuple[Run, str], member: Any,
                                                                     outsider: Any) -> None:
    run, _ = started_run
    mine, ok_mine, _ = await _connect("/ws/runs/?after=0", member)
    theirs, ok_theirs, _ = await _connect("/ws/runs/?after=0", outsider)
    assert ok_mine and ok_theirs
    history = [await mine.receive_json_from(timeout=10) for _ in range(3)]
    assert [m["data"]["status"] for m in history] == ["draft", "queued", "starting"]
    assert all(m["data"]["run"] == run.pk for m in history)
    assert [m["pos"] for m in history] == sorted(m["pos"] for m in history)
    await database_sync_to_async(run_transition)(run_id=run.pk, to=RunStatus.FAILED, reason="boom")
    live = await mine.receive_json_from(timeout=10)
    assert live["type"] == "status" and live["data"]["status"] == "failed" and live["data"]["reason"] == "boom"
    assert live["data"]["from"] == "starting" and live["pos"] > history[-1]["pos"]
    assert await theirs.receive_nothing(timeout=0.5)  # another team sees nothing of it
    await mine.disconnect()
    await theirs.disconnect()


async def test_isolation_and_authentication(started_run: tuple[Run, str], outsider: Any, viewer: Any) -> None:
    run, _ = started_run
    for user, path, code in [(outsider, f"/ws/runs/{run.pk}/?after=0", 4404),
                             (viewer, f"/ws/runs/{run.pk + 1000}/", 4404),
                             (None, f"/ws/runs/{run.pk}/", 4401),
                             (None, "/ws/runs/", 4401)]:
        communicator, connected, _ = await _connect(path, user)
        # accepted, then closed with the code: a browser sees 4404/4401, not a failed handshake
        assert connected, path
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": code}, path
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/?after=0", viewer)
    assert connected  # viewers read
    await communicator.disconnect()
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/", viewer, origin="http://evil.example")
    assert not connected  # cross-site websocket hijacking is refused


async def test_disconnect_stops_the_poller(started_run: tuple[Run, str], member: Any, settings: Any) -> None:
    settings.FIPO_WS_POLL_S = 0.05
    run, _ = started_run
    communicator, connected, _ = await _connect(f"/ws/runs/{run.pk}/", member)
    assert connected
    await communicator.disconnect()
    await asyncio.sleep(0.2)  # a leaked poller would raise on the closed socket; the test would error
