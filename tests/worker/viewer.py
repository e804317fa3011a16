"""A run page's live stream without the browser: a websocket client that reconnects like
``frontend/static/dashboard/js/live.js`` (``?after=<last pos>``, drop items at or below it).

Used by the chaos bench (Redis restarted under open pages) and the soak (20 viewers, delivery time).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


class Viewer(threading.Thread):
    """Follows ``/ws/runs/<id>/`` from ``after`` on, reconnecting until ``stop()``.

    ``items`` are the delivered items in order; ``gaps`` counts positions that did not continue the
    previous one (a missed item), ``repeats`` items at or below the last position (dropped, as the
    page does), ``reconnects`` connections after the first. ``on_item(item, received_at)`` runs in
    this thread for every delivered item.
    """

    def __init__(self, base_url: str, run_id: int, session: str, *, after: int = 0,
                 on_item: Callable[[dict[str, Any], float], None] | None = None, retry_s: float = 0.5) -> None:
        super().__init__(name=f"viewer-{run_id}", daemon=True)
        self.url = base_url.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
        self.origin = base_url
        self.cookie = f"sessionid={session}"
        self.pos = after
        self.on_item = on_item
        self.retry_s = retry_s
        self.items: list[dict[str, Any]] = []
        self.gaps = self.repeats = self.reconnects = self.connects = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._ws: Any = None

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with connect(f"{self.url}?after={self.pos}", origin=self.origin, open_timeout=10,
                             additional_headers={"Cookie": self.cookie}) as ws:
                    self._ws = ws
                    self.connects += 1
                    self.reconnects = self.connects - 1
                    for message in ws:
                        self._deliver(json.loads(message))
            except (WebSocketException, OSError, TimeoutError, EOFError) as exc:  # a busy server drops handshakes too
                if len(self.errors) < 20:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self._ws = None
            self._halt.wait(self.retry_s)

    def _deliver(self, item: dict[str, Any]) -> None:
        received = time.time()
        pos = item["pos"]
        if pos <= self.pos:
            self.repeats += 1
            return
        if pos != self.pos + 1:
            self.gaps += 1
        self.pos = pos
        self.items.append(item)
        if self.on_item is not None:
            self.on_item(item, received)

    def wait_pos(self, pos: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.pos < pos and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.pos >= pos

    def stop(self) -> None:
        self._halt.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):  # the server may have dropped it already
                ws.close()
        self.join(timeout=10)
