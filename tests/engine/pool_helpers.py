"""Chunk functions for the timeout-pool tests, in a module that imports nothing heavy (the pool's
workers import it to unpickle them)."""

from __future__ import annotations

import time


def sleep_chunk(items: list[float]) -> list[bool]:
    for seconds in items:
        time.sleep(seconds)
    return [True] * len(items)
