"""Websockets: ``/ws/runs/<id>/?after=<pos>`` (one run's stream) and ``/ws/runs/?after=<pos>``
(status changes of every run in the user's teams). Session auth (``AuthMiddlewareStack``).

On connect the consumer joins its group(s) *first* and then replays every item with ``pos > after``
from the database, so nothing committed in between is missed. Afterwards a notice that carries the
messages continuing what the client has (first ``pos <= last_pos + 1``) is forwarded as is, with no
database read; any other notice, and the poll tick of an idle stream (items written by processes
whose notices cannot reach this one), makes it read what is new. One lock serialises reads and
sends, and ``last_pos`` only grows, so a client never sees an item twice or out of order.

Close codes (sent after the handshake, so browsers see them): 4401 not logged in, 4404 run not
found or not in the user's teams, 4403 access lost while connected (the user left or was removed
from the team, or was deactivated). Access is re-checked when the user's memberships change (a notice
to the user's group, ``stream.notify_user_access_on_commit``) and on every poll tick, whether or
not the stream is idle, so a missed notice costs at most ``FIPO_WS_POLL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from webapp.accounts.models import User
from webapp.accounts.selectors import user_team_ids
from webapp.runs import stream
from webapp.runs.models import Run

logger = logging.getLogger(__name__)

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_ACCESS_LOST = 4403
BATCH = 500


def _after(scope: dict[str, Any]) -> int | None:
    """The ``after`` query parameter; None when absent or not a non-negative integer."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("after")
    if not values:
        return None
    try:
        value = int(values[0])
    except ValueError:
        return None
    return value if value >= 0 else None


class _StreamConsumer(AsyncJsonWebsocketConsumer):
    """Shared mechanics: groups, catch-up, notices, polling."""

    groups_to_join: list[str]
    last_pos: int

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_NOT_AUTHENTICATED)
            return
        if not await self.authorize(user):
            await self.refuse(CLOSE_NOT_FOUND)
            return
        self._lock = asyncio.Lock()
        self._last_notice = time.monotonic()
        self._closed = False
        self.user = user
        self.groups_to_join = [*self.group_names(), stream.user_group(user.pk)]
        for group in self.groups_to_join:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        after = _after(self.scope)
        self.last_pos = await self.head() if after is None else after
        await self.send_new()
        self._poller = asyncio.ensure_future(self.poll())

    async def refuse(self, code: int) -> None:
        """Accept, then close with ``code``: closing before the handshake completes turns into an
        HTTP 403 and the browser sees only 1006, so it could not tell "not found" from "retry"."""
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        for group in getattr(self, "groups_to_join", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen; anything they send is ignored."""

    async def stream_notify(self, event: dict[str, Any]) -> None:
        self._last_notice = time.monotonic()
        carried = event.get("items")
        if carried and carried[0][0] <= self.last_pos + 1:
            async with self._lock:
                if carried[0][0] <= self.last_pos + 1:  # still contiguous after waiting for the lock
                    for pos, text in carried:
                        if pos == self.last_pos + 1:
                            await self.send(text_data=text)
                            self.last_pos = pos
                    return
        await self.send_new()

    async def access_changed(self, event: dict[str, Any]) -> None:
        """The user's memberships changed: close with 4403 if this stream is no longer theirs."""
        await self.recheck()

    async def recheck(self) -> bool:
        """Re-run the access check; False (and the socket closed with 4403) when access is gone."""
        if self._closed:
            return False
        if await self.still_allowed():
            return True
        self._closed = True
        poller = getattr(self, "_poller", None)
        if poller is not None and poller is not asyncio.current_task():
            poller.cancel()
        await self.close(code=CLOSE_ACCESS_LOST)
        return False

    async def poll(self) -> None:
        """Every ``FIPO_WS_POLL_S`` seconds re-check access; read what is new when no notice came
        for that long: a busy stream is kept current by its notices (and a gap in them triggers a
        read), so polling only has to cover writes that send no notice here."""
        interval = settings.FIPO_WS_POLL_S
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(max(0.05, min(last_check, self._last_notice) + interval - time.monotonic()))
            if time.monotonic() - last_check >= interval:
                last_check = time.monotonic()
                try:
                    if not await self.recheck():
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.warning("websocket access check failed", exc_info=True)
            if time.monotonic() - self._last_notice < interval:
                continue
            self._last_notice = time.monotonic()
            try:
                await self.send_new()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the stream: the next tick retries
                logger.warning("websocket poll failed", exc_info=True)

    async def send_new(self) -> None:
        if self._closed:
            return
        async with self._lock:
            while True:
                messages = await self.fetch(self.last_pos)
                for message in messages:
                    if message["pos"] > self.last_pos:
                        await self.send_json(message)
                        self.last_pos = message["pos"]
                if len(messages) < BATCH:
                    return

    # --- specialised by the two consumers
    async def authorize(self, user: Any) -> bool:
        raise NotImplementedError

    async def still_allowed(self) -> bool:
        raise NotImplementedError

    def group_names(self) -> list[str]:
        raise NotImplementedError

    async def head(self) -> int:
        raise NotImplementedError

    async def fetch(self, after: int) -> list[dict[str, Any]]:
        raise NotImplementedError


class RunStreamConsumer(_StreamConsumer):
    """One run's stream: status, metric, sample, checkpoint, eval and log items."""

    async def authorize(self, user: Any) -> bool:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        return await database_sync_to_async(self._visible)(user)

    def _visible(self, user: Any) -> bool:
        if not User.objects.filter(pk=user.pk, is_active=True).exists():
            return False
        return Run.objects.filter(pk=self.run_id, team_id__in=user_team_ids(user=user)).exists()

    async def still_allowed(self) -> bool:
        return await database_sync_to_async(self._visible)(self.user)

    def group_names(self) -> list[str]:
        return [stream.run_group(self.run_id)]

    async def head(self) -> int:
        return await database_sync_to_async(
            lambda: Run.objects.filter(pk=self.run_id).values_list("stream_pos", flat=True).first() or 0
        )()

    async def fetch(self, after: int) -> list[dict[str, Any]]:
        return await database_sync_to_async(stream.stream_after)(run_id=self.run_id, after=after, limit=BATCH)


class UserRunsConsumer(_StreamConsumer):
    """Status changes of the runs of the user's teams (team membership read at connect)."""

    async def authorize(self, user: Any) -> bool:
        self.team_ids = await database_sync_to_async(user_team_ids)(user=user)
        return True

    async def still_allowed(self) -> bool:
        """False when a team was left (its runs' statuses must stop); a team joined is simply added."""
        def current() -> list[int] | None:
            if not User.objects.filter(pk=self.user.pk, is_active=True).exists():
                return None
            return user_team_ids(user=self.user)

        now = await database_sync_to_async(current)()
        if now is None or set(self.team_ids) - set(now):
            return False
        for team_id in set(now) - set(self.team_ids):
            group = stream.team_group(team_id)
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_to_join.append(group)
        self.team_ids = now
        return True

    def group_names(self) -> list[str]:
        return [stream.team_group(team_id) for team_id in self.team_ids]

    async def head(self) -> int:
        return await database_sync_to_async(stream.user_stream_head)(team_ids=self.team_ids)

    async def fetch(self, after: int) -> list[dict[str, Any]]:
        return await database_sync_to_async(stream.user_stream_after)(team_ids=self.team_ids, after=after, limit=BATCH)
