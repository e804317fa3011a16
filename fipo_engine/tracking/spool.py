"""The local event spool: an append-only JSONL file that is the run's own record.

Every event is written here *before* anything is sent over the network, so a server that is
down, slow or wrong never loses a metric: the sender thread re-reads this file. Sequence numbers
are assigned here and continue across restarts (the next seq is one past the last line on disk).
The acknowledged position lives in a small sidecar file (``events.acked``) replaced atomically,
so a restarted process does not re-send what the server already holds.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fipo_engine.fsutil import atomic_write_text

SPOOL_NAME = "events.jsonl"
ACK_NAME = "events.acked"


def _json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: they become null (the API documents NaN as null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class Spool:
    """Append-only, line-per-event JSONL file with monotonically increasing ``seq`` (from 1)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / SPOOL_NAME
        self.ack_path = self.dir / ACK_NAME
        self._lock = threading.Lock()
        self.last_seq = self._recover()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    # ---- writing ------------------------------------------------------------------------
    def _recover(self) -> int:
        """Find the last complete event; cut a torn last line left by a crash mid-write."""
        if not self.path.exists():
            return 0
        last_seq, good_end = 0, 0
        with open(self.path, "rb") as fh:
            offset = 0
            for raw in fh:
                offset += len(raw)
                if not raw.endswith(b"\n"):
                    break
                try:
                    last_seq = int(json.loads(raw)["seq"])
                except (ValueError, KeyError, TypeError):
                    break
                good_end = offset
        if good_end != self.path.stat().st_size:
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
        return last_seq

    def append(self, event: dict[str, Any]) -> int:
        """Give the event the next seq, write it as one line and flush; return the seq."""
        with self._lock:
            seq = self.last_seq + 1
            line = json.dumps({"seq": seq, **_json_safe(event)}, ensure_ascii=False, allow_nan=False)
            self._fh.write(line + "\n")
            self._fh.flush()
            self.last_seq = seq
            return seq

    def sync(self) -> None:
        """Force the spool to disk (called on status changes and at close, not per event)."""
        with self._lock:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()

    # ---- reading ------------------------------------------------------------------------
    def read_after(self, seq: int, offset_hint: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(end_offset, event)`` for complete events with ``seq`` greater than the given one.

        ``offset_hint`` is a byte offset known to start a line at or before the first wanted event
        (the sender remembers where it stopped, so it never rescans the whole file).
        """
        with open(self.path, "rb") as fh:
            fh.seek(offset_hint)
            offset = offset_hint
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # a line still being written
                offset += len(raw)
                event = json.loads(raw)
                if event["seq"] > seq:
                    yield offset, event

    def events(self) -> list[dict[str, Any]]:
        """Every event in the spool (tests and tools)."""
        return [event for _, event in self.read_after(0)]

    # ---- acknowledgements ---------------------------------------------------------------
    def read_ack(self) -> int:
        try:
            return int(self.ack_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def write_ack(self, seq: int) -> None:
        """Replace the ack file atomically: a crash mid-write never leaves a torn number."""
        atomic_write_text(self.ack_path, f"{seq}\n")
