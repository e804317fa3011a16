"""The per-run stream: append items under the run's row lock, read them back, notify after commit.

Every change a browser must see (status change, metric, sample, checkpoint, eval, log) is one
``StreamItem`` with a ``pos`` that increases per run. Websocket consumers replay ``pos > after`` on
connect and then follow notices.

A notice is sent with ``transaction.on_commit``, i.e. only for committed rows, and carries the
messages of the items it announces, JSON-encoded once (``[pos, text]``; the text is exactly what a
read would send), so that N open pages cost one ``group_send`` and no database reads per batch. A consumer sends the
carried messages only when they continue what it has sent (``pos`` of the first <= its last + 1);
after a gap (a lost notice, another process's write, notices of two web processes crossing) it
reads the rows instead. So a lost, duplicated or reordered notice can never make a client skip or
repeat an item. Notices of very large appends carry no messages (``NOTICE_MAX_ITEMS``).

Only the web process needs to send notices: with the in-memory channel layer a worker's
``group_send`` reaches nobody, so a Celery worker skips it, and idle consumers poll every
``FIPO_WS_POLL_S`` seconds to pick up items written by other processes (worker transitions in the
embedded mode).

The stream belongs to the runs app because a status change (``services.run_transition_locked``)
appends to it; ``webapp.tracking`` (ingest, websocket consumers) and ``webapp.leaderboards`` use
the public functions here, so each of those depends on ``runs`` and ``runs`` on none of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction
from django.utils import timezone

from webapp.common.fastsql import datetime_param, insert_rows, json_param, json_placeholder
from webapp.common.utils import iso
from webapp.runs.models import Run, RunTransition, StreamItem

logger = logging.getLogger(__name__)

NOTIFY_TYPE = "stream.notify"  # handled by the consumers' ``stream_notify``
NOTICE_MAX_ITEMS = 500  # larger appends send a bare notice: consumers read those rows in batches

_in_worker_process = False


def mark_worker_process() -> None:
    """Called by the Celery worker at start: skip notices the in-memory layer could not deliver."""
    global _in_worker_process
    _in_worker_process = True


def run_group(run_id: int) -> str:
    return f"fipo.run.{run_id}"


def team_group(team_id: int) -> str:
    return f"fipo.team.{team_id}"


def user_group(user_id: int) -> str:
    """Every websocket of one user: told when the user's memberships change (access re-checked)."""
    return f"fipo.user.{user_id}"


ACCESS_TYPE = "access.changed"


def notify_user_access_on_commit(*, user_id: int) -> None:
    """After the commit, make the user's open websockets re-check what they may see (4403 if no longer)."""
    group = user_group(user_id)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None or (_in_worker_process and isinstance(layer, InMemoryChannelLayer)):
            return
        try:
            async_to_sync(layer.group_send)(group, {"type": ACCESS_TYPE})
        except Exception:  # consumers also re-check on every poll tick
            logger.warning("could not send access notice to %s", group, exc_info=True)

    transaction.on_commit(send)


def stream_append(*, run: Run, items: Sequence[tuple[str, dict[str, Any], int | None]]) -> None:
    """Append ``(type, data, seq)`` items to a run's stream. The caller holds the run's row lock
    (``select_for_update``) inside ``transaction.atomic`` and saves ``run.stream_pos`` afterwards.
    The run's websocket consumers get the items in a notice once the transaction commits."""
    if not items:
        return
    first = run.stream_pos + 1
    at = datetime_param(timezone.now())
    rows = [(run.pk, run.stream_pos + i, seq, type_, json_param(data), at)
            for i, (type_, data, seq) in enumerate(items, start=1)]
    insert_rows(StreamItem._meta.db_table, ["run_id", "pos", "seq", "type", "data", "at"], rows,
                placeholders=["%s", "%s", "%s", "%s", json_placeholder(), "%s"],
                pg_types=["bigint", "bigint", "bigint", "text", "jsonb", "timestamptz"])
    run.stream_pos += len(rows)
    carried = encoded_messages(first, items) if len(items) <= NOTICE_MAX_ITEMS else None
    group = run_group(run.pk)
    transaction.on_commit(lambda: _send_notices([group], carried))


def encoded_messages(first_pos: int, items: Sequence[tuple[str, dict[str, Any], int | None]]
                     ) -> list[list[Any]]:
    """``[pos, json text]`` of each item's websocket message, encoded once for every consumer (the
    in-memory layer deep-copies a notice per consumer: strings copy for free)."""
    return [[pos, json.dumps({"pos": pos, "type": type_, "data": data}, allow_nan=False)]
            for pos, (type_, data, _seq) in enumerate(items, start=first_pos)]


def item_message(item: StreamItem) -> dict[str, Any]:
    """The websocket message of one item (docs/api-contract.md "Websockets")."""
    return {"pos": item.pos, "type": item.type, "data": item.data}


def stream_after(*, run_id: int, after: int, limit: int = 500) -> list[dict[str, Any]]:
    """Messages of the run's items with ``pos > after``, oldest first (at most ``limit``)."""
    items = StreamItem.objects.filter(run_id=run_id, pos__gt=after).order_by("pos")[:limit]
    return [item_message(item) for item in items]


def transition_message(transition: RunTransition) -> dict[str, Any]:
    """A status change as a message; ``pos`` is the transition id in the per-user stream."""
    return {"pos": transition.pk, "type": "status", "data": status_data(transition)}


def status_data(transition: RunTransition) -> dict[str, Any]:
    return {
        "run": transition.run_id,
        "status": transition.to_status,
        "from": transition.from_status,
        "reason": transition.reason,
        "at": iso(transition.at),
    }


def user_stream_after(*, team_ids: Iterable[int], after: int, limit: int = 500) -> list[dict[str, Any]]:
    """Status changes of runs in these teams with transition id ``> after``, oldest first."""
    rows = RunTransition.objects.filter(run__team_id__in=list(team_ids), pk__gt=after).order_by("pk")[:limit]
    return [transition_message(t) for t in rows]


def user_stream_head(*, team_ids: Iterable[int]) -> int:
    last = RunTransition.objects.filter(run__team_id__in=list(team_ids)).order_by("-pk").values_list("pk", flat=True)
    return last.first() or 0


def notify_team_on_commit(*, team_id: int) -> None:
    """After the current transaction commits, tell the team's websocket consumers (``/ws/runs/``)
    that a run's status changed. The run's own consumers are told by ``stream_append``, which every
    stream write goes through."""
    group = team_group(team_id)
    transaction.on_commit(lambda: _send_notices([group], None))


def _send_notices(groups: list[str], carried: list[list[Any]] | None) -> None:
    layer = get_channel_layer()
    if layer is None or (_in_worker_process and isinstance(layer, InMemoryChannelLayer)):
        return
    notice: dict[str, Any] = {"type": NOTIFY_TYPE}
    if carried:
        notice["items"] = carried
    try:
        for group in groups:
            async_to_sync(layer.group_send)(group, notice)
    except Exception:  # a notice is an optimisation: consumers also poll; never fail the request
        logger.warning("could not send websocket notice to %s", groups, exc_info=True)
