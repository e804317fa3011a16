"""A graceful stop on SIGTERM/SIGINT: the loop finishes what it must, checkpoints, and returns.

The control plane cancels a run with SIGTERM and sends SIGKILL after a grace period
(``FIPO_CANCEL_GRACE_S``, 10 s by default). The first SIGTERM or SIGINT only sets a flag; the
trainer polls it at safe points (every generated token, between generation batches, before each
step, during evaluation), so it reacts within one token or one update phase. A second signal
raises ``KeyboardInterrupt`` at once (no checkpoint): a user who presses Ctrl-C twice means it.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any


class StopRequest:
    """Set by the first SIGTERM/SIGINT after ``install``; ``requested()`` is what the loop polls."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, name: str = "stop") -> None:
        """Ask for a stop without a signal (tests, embedding code)."""
        self.signal_name = self.signal_name or name

    def __enter__(self) -> StopRequest:
        """Handle SIGTERM and SIGINT until ``__exit__`` puts the previous handlers back (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            raise KeyboardInterrupt(f"second signal ({name})")
        self.signal_name = name
        # os.write, not logging/print: safe whatever the main thread was doing when the signal came
        os.write(2, f"fipo train: {name} received; stopping at the next safe point (checkpoint, then exit). "
                    "Send it again to stop at once.\n".encode())
