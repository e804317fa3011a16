"""Client side of the tracking protocol (docs/api-contract.md "Ingest").

    tracker = Tracker(run_dir, server="http://127.0.0.1:8000", run_id="42", token="...")
    tracker.status("running", "started")
    tracker.metric(step, {"reward/mean": 0.1})
    tracker.close(timeout=30)

Guarantees:
1. Every event is appended to ``run_dir/events.jsonl`` first (the spool); training never waits on
   the network: ``metric()``/``sample()`` only write a line and wake the sender thread.
2. A background thread posts the spool in order, in batches, to
   ``POST {server}/api/v1/runs/{run_id}/events`` with ``Authorization: Bearer {token}``.
   Connection errors, timeouts, 408/429 and 5xx are retried with exponential backoff; nothing is
   skipped, so events arrive in ``seq`` order once the server is back.
3. A 4xx answer to a batch is retried event by event: the events the server refuses (and those
   listed in the answer's ``rejected``) are logged and dropped, the others go through.
   401/403 mean the run token no longer works: sending stops, the spool keeps everything.
4. The highest handled ``seq`` is kept in ``events.acked``; a restarted process (``--resume``)
   continues the sequence numbers and does not re-send acknowledged events. The server stores an
   event at most once per ``(run, seq)``, so a re-send after a crash is harmless anyway.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import tenacity

from fipo_engine.tracking import protocol
from fipo_engine.tracking.spool import Spool

log = logging.getLogger("fipo.tracking")

RETRY_STATUS = {408, 425, 429}
AUTH_STATUS = {401, 403}


def _wire(event: dict[str, Any]) -> dict[str, Any]:
    """The event as sent: keys starting with ``_`` (local-only, e.g. ``_time``) stay in the spool."""
    return {k: v for k, v in event.items() if not k.startswith("_")}


class _Sender(threading.Thread):
    """Tails the spool from the acknowledged position and posts it; never raises into training."""

    def __init__(self, spool: Spool, url: str, token: str, *, max_batch_events: int, max_batch_bytes: int,
                 backoff_initial: float, backoff_max: float, request_timeout: float) -> None:
        super().__init__(name="fipo-tracking-sender", daemon=True)
        self.spool = spool
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.acked = spool.read_ack()
        self._offset = 0  # byte offset just after the last handled event
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._abort = threading.Event()
        self.disabled_reason: str | None = None
        self.server_acked = 0  # highest contiguous seq the server said it holds
        self.stats = {"posts": 0, "failures": 0, "dropped": 0}

    # ---- control (called from the training thread) -----------------------------------------
    def notify(self) -> None:
        self._wake.set()

    def begin_close(self) -> None:
        self._closing.set()
        self._wake.set()

    def abort(self) -> None:
        self._abort.set()
        self._closing.set()
        self._wake.set()

    @property
    def caught_up(self) -> bool:
        return self.disabled_reason is not None or self.acked >= self.spool.last_seq

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        with httpx.Client(timeout=self.request_timeout) as client:
            while not self._abort.is_set() and self.disabled_reason is None:
                if self.acked >= self.spool.last_seq:
                    if self._closing.is_set():
                        return
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                if self._send_next_batch(client) is None:  # read nothing yet: the spool is being written
                    self._wake.wait(0.05)

    def _send_next_batch(self, client: httpx.Client) -> bool | None:
        """Deliver the spool's next batch, trying again with exponential backoff (``backoff_initial``
        doubling up to ``backoff_max``) until it is handled, the token is refused, or ``abort()``.

        Each try re-reads the batch from the spool, so events written during an outage go out with it.
        True once delivered, False when given up (abort, token refused), None when there was nothing
        to read. close() does not shorten a wait (the deadline in close() does); abort() ends it at once.
        """

        def attempt() -> bool | None:
            if self._abort.is_set():
                return False
            batch, end_offset = self._next_batch()
            if not batch:
                return None
            try:
                done = self._deliver(client, batch)
            except Exception as exc:  # logging must never crash training
                log.exception("tracking sender error: %s", exc)
                done = False
            if done:
                # The server may already hold more (a previous process crashed before writing
                # events.acked): skip what it has.
                self._advance(max(batch[-1]["seq"], min(self.server_acked, self.spool.last_seq)), end_offset)
            else:
                self.stats["failures"] += 1
            return done

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(
                lambda done: done is False and not self._abort.is_set() and self.disabled_reason is None),
            wait=tenacity.wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
            sleep=self._abort.wait,  # returns as soon as abort() sets the event
        )
        return retrying(attempt)

    def _next_batch(self) -> tuple[list[dict[str, Any]], int]:
        batch: list[dict[str, Any]] = []
        size, end_offset = 0, self._offset
        for offset, event in self.spool.read_after(self.acked, self._offset):
            wire = _wire(event)
            n = len(json.dumps(wire))
            if batch and (len(batch) >= self.max_batch_events or size + n > self.max_batch_bytes):
                break
            batch.append(wire)
            size += n
            end_offset = offset
        return batch, end_offset

    def _advance(self, seq: int, end_offset: int) -> None:
        self.acked = max(self.acked, seq)
        self._offset = end_offset
        self.spool.write_ack(self.acked)

    def _post(self, client: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response | None:
        """One POST; None on a network error (retry later)."""
        self.stats["posts"] += 1
        try:
            return client.post(self.url, content=json.dumps(events), headers=self.headers)
        except httpx.HTTPError as exc:
            log.debug("tracking server unreachable: %s", exc)
            return None

    @staticmethod
    def _try_again(response: httpx.Response | None) -> bool:
        """Whether an answer means "send it again later": no answer (network error), 5xx, 408/425/429."""
        return response is None or response.status_code >= 500 or response.status_code in RETRY_STATUS

    def _post_until_answered(self, client: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response | None:
        """POST ``events`` until the answer is not "try again", ``backoff_initial`` apart, for as long
        as it takes; None once ``abort()`` is called: the wait between tries ends at once, and no
        POST starts after it."""

        def once() -> httpx.Response | None:
            return None if self._abort.is_set() else self._post(client, events)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda answer: self._try_again(answer) and not self._abort.is_set()),
            wait=tenacity.wait_fixed(self.backoff_initial),
            sleep=self._abort.wait,  # returns as soon as abort() sets the event
        )
        answer = retrying(once)
        return None if self._try_again(answer) else answer

    def _deliver(self, client: httpx.Client, batch: list[dict[str, Any]]) -> bool:
        """True when every event of the batch is handled (stored, duplicate, or rejected for good)."""
        response = self._post(client, batch)
        if self._try_again(response):
            return False
        if response.status_code in AUTH_STATUS:
            self.disabled_reason = f"server answered {response.status_code}: {response.text[:200]}"
            log.error("tracking disabled (run token refused); the spool keeps every event: %s",
                      self.disabled_reason)
            return False
        if response.is_success:
            self._log_rejected(response)
            return True
        # Another 4xx: find the culprit(s) by sending one by one; keep the rest, in order.
        if len(batch) == 1:
            self.stats["dropped"] += 1
            log.warning("tracking: server refused event seq=%s (%s): %s", batch[0].get("seq"),
                        response.status_code, response.text[:300])
            return True
        for event in batch:
            single = self._post_until_answered(client, [event])
            if single is None:  # aborted
                return False
            if single.status_code in AUTH_STATUS:
                self.disabled_reason = f"server answered {single.status_code}"
                return False
            if single.is_success:
                self._log_rejected(single)
            else:
                self.stats["dropped"] += 1
                log.warning("tracking: server refused event seq=%s (%s): %s", event.get("seq"),
                            single.status_code, single.text[:300])
            self._advance(event["seq"], self._offset)
        return True

    def _log_rejected(self, response: httpx.Response) -> None:
        """Log the answer's ``rejected`` list; remember ``acked_seq`` (the server may hold more)."""
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if isinstance(body.get("acked_seq"), int):
            self.server_acked = max(self.server_acked, body["acked_seq"])
        for item in body.get("rejected") or []:
            self.stats["dropped"] += 1
            log.warning("tracking: server rejected seq=%s: %s", item.get("seq"), item.get("reason"))


class Tracker:
    """Spool every event locally and, when a server is given, stream it there in the background."""

    def __init__(self, run_dir: str | Path, *, server: str | None = None, run_id: str | int | None = None,
                 token: str | None = None, max_batch_events: int = 200, max_batch_bytes: int = 1_000_000,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0, request_timeout: float = 10.0) -> None:
        self.spool = Spool(run_dir)
        self._sender: _Sender | None = None
        if server:
            if run_id is None or not token:
                raise ValueError("--server needs --run-id and --token")
            url = f"{server.rstrip('/')}/api/v1/runs/{run_id}/events"
            self._sender = _Sender(self.spool, url, token, max_batch_events=max_batch_events,
                                   max_batch_bytes=max_batch_bytes, backoff_initial=backoff_initial,
                                   backoff_max=backoff_max, request_timeout=request_timeout)
            self._sender.start()

    # ---- events -------------------------------------------------------------------------
    def emit(self, type_: str, **payload: Any) -> int:
        """Append one event (``{"seq", "type", ...payload}``) and wake the sender; returns its seq."""
        seq = self.spool.append({"type": type_, **payload, "_time": round(time.time(), 3)})
        if self._sender is not None:
            self._sender.notify()
        return seq

    def _build(self, type_: str, **fields: Any) -> int:
        """Emit an event built by the protocol's model (``fipo_engine.tracking.protocol``), the one
        the server parses it with. An event the model refuses is logged here, where the mistake is,
        and still spooled as given: the server then refuses it too and records why in the run's
        stream, as it always did (a logging mistake never stops training)."""
        try:
            event = protocol.build(type_, fields)
        except protocol.EventError as exc:
            log.warning("tracking: the %s event does not follow the protocol (%s); the server will refuse it",
                        type_, exc)
            event = dict(fields)
        event.pop("type", None)
        return self.emit(type_, **event)

    def metric(self, step: int, values: dict[str, float | None]) -> int:
        return self._build("metric", step=step, values=values)

    def sample(self, step: int, index: int, **fields: Any) -> int:
        """``fields``: prompt, response, reward, correct, tokens, minibatch, num_minibatches and the
        per-token channels (``fipo_engine.token_channels``), one value per token each."""
        return self._build("sample", step=step, index=index, **fields)

    def status(self, state: str, message: str = "") -> int:
        seq = self._build("status", state=state, message=message)
        self.spool.sync()
        return seq

    def checkpoint(self, step: int, uri: str) -> int:
        return self._build("checkpoint", step=step, uri=uri)

    def eval(self, **fields: Any) -> int:
        return self._build("eval", **fields)

    def log(self, text: str) -> int:
        return self._build("log", text=text)

    # ---- shutdown -----------------------------------------------------------------------
    @property
    def acked_seq(self) -> int:
        return self._sender.acked if self._sender else self.spool.read_ack()

    @property
    def stats(self) -> dict[str, Any]:
        s = self._sender
        return {"last_seq": self.spool.last_seq, "acked_seq": self.acked_seq,
                **(s.stats if s else {}), "disabled": s.disabled_reason if s else None}

    def close(self, timeout: float = 30.0) -> bool:
        """Flush the spool, give the sender up to ``timeout`` s to deliver; True if all was delivered.

        Whatever is not delivered stays in the spool and is sent by the next process that opens the
        same run directory with a server (e.g. ``fipo train --resume``).
        """
        delivered = True
        if self._sender is not None:
            self._sender.begin_close()
            self._sender.join(timeout)
            delivered = self._sender.caught_up and self._sender.disabled_reason is None
            if self._sender.is_alive():
                self._sender.abort()
                self._sender.join(5.0)
            if not delivered:
                log.warning("tracking: %d event(s) not delivered yet; they stay in %s",
                            self.spool.last_seq - self._sender.acked, self.spool.path)
        self.spool.close()
        return delivered
