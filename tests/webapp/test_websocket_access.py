"""Issue 14, item 7: an open websocket does not outlive the membership that allowed it.

Removing a user from the team closes their run stream with 4403 at once (a notice to the user's
group); the poll tick re-checks too, so access also ends when the notice is lost."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from webapp.accounts.models import Membership
from webapp.asgi import application
from webapp.runs.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _headers(user: Any) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [(b"origin", b"http://testserver"), (b"host", b"testserver"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def _open(path: str, user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=await database_sync_to_async(_headers)(user))
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def _close_code(communicator: WebsocketCommunicator) -> int | None:
    while True:
        message = await communicator.receive_output(timeout=5)
        if message["type"] == "websocket.close":
            return message.get("code")


@pytest.mark.parametrize("path", ["/ws/runs/{run}/?after=0", "/ws/runs/?after=0"])
async def test_removal_from_the_team_closes_the_socket_with_4403(started_run: tuple[Run, str], member: Any,
                                                                 settings: Any, path: str) -> None:
    settings.FIPO_WS_POLL_S = 30.0  # the membership notice, not the poll, must do it
    run, _ = started_run
    communicator = await _open(path.format(run=run.pk), member)
    await database_sync_to_async(lambda: Membership.objects.filter(user=member).delete())()
    assert await _close_code(communicator) == 4403
    await communicator.disconnect()


async def test_the_poll_tick_rechecks_access_without_a_notice(started_run: tuple[Run, str], member: Any,
                                                              settings: Any) -> None:
    settings.FIPO_WS_POLL_S = 0.2
    run, _ = started_run
    communicator = await _open(f"/ws/runs/{run.pk}/?after=0", member)
    # a queryset update sends no signal: only the poll can notice
    await database_sync_to_async(lambda: Membership.objects.filter(user=member)._raw_delete("default"))()
    assert await _close_code(communicator) == 4403
    await communicator.disconnect()


async def test_a_teammate_staying_keeps_the_stream(started_run: tuple[Run, str], member: Any, owner: Any,
                                                   settings: Any) -> None:
    settings.FIPO_WS_POLL_S = 0.2
    run, _ = started_run
    communicator = await _open(f"/ws/runs/{run.pk}/?after=0", member)
    head = await database_sync_to_async(lambda: Run.objects.get(pk=run.pk).stream_pos)()
    while (await communicator.receive_json_from(timeout=5))["pos"] < head:
        pass  # the catch-up
    await database_sync_to_async(lambda: Membership.objects.filter(user=owner).delete())()  # someone else leaves
    assert await communicator.receive_nothing(timeout=1.0, interval=0.1)  # no close, several poll ticks later
    await communicator.disconnect()
