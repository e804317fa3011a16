"""math-verify with a hard timeout: worker processes that can be killed, fed in batches.

Why a process pool: math-verify's own timeouts use ``signal.alarm``, which works only in a main
thread, and even there cannot interrupt C code that holds the GIL. OpenRLHF calls our reward
function in threads, where ``\\boxed{9^{9^{9^{9}}}}`` makes sympy compute a power tower inside one C
call: the thread never returns and, holding the GIL, stalls the whole vLLM engine process. Only a
separate process can be stopped. So comparisons that need math-verify run here:

* the cheap verdicts stay in the caller (equal normalised strings, two different plain integers:
  ``graders.quick_equal``), so most AIME-style answers never cross a process boundary;
* the rest go to a pool of ``forkserver`` workers (importing only ``fipo_engine.mathverify``) (fork would copy a CUDA/vLLM parent) in chunks,
  one round trip per chunk, never per answer; inside a worker math-verify runs in the main thread,
  so its own 5 s timeouts apply too;
* the whole batch has a deadline of ``timeout_s`` per wave of chunks; chunks still running then are
  graded wrong (and logged), the workers are killed and a fresh pool is started on the next call.

``FIPO_MATH_TIMEOUT_S`` (default 10) sets ``timeout_s``; ``FIPO_MATH_WORKERS`` the pool size.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.pool import AsyncResult, Pool
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
CHUNKS_PER_WORKER = 4


def _default_workers() -> int:
    return int(os.environ.get("FIPO_MATH_WORKERS") or max(1, min(4, (os.cpu_count() or 2) // 2)))


def _default_timeout() -> float:
    return float(os.environ.get("FIPO_MATH_TIMEOUT_S") or DEFAULT_TIMEOUT_S)


class TimeoutPool:
    """A killable process pool that maps a picklable chunk function over items under a deadline."""

    def __init__(self, workers: int | None = None, timeout_s: float | None = None) -> None:
        self.workers = workers or _default_workers()
        self.timeout_s = timeout_s or _default_timeout()
        self._pool: Pool | None = None
        self._lock = threading.Lock()  # OpenRLHF calls the reward function from many threads
        self.timeouts = 0  # chunks given up on (for tests and logs)

    def _get(self) -> Pool:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["fipo_engine.mathverify"])
            pool = ctx.Pool(self.workers)
            # wait for the workers (interpreter start, math-verify import) before any deadline runs
            pool.apply_async(os.getpid).get(120)
            self._pool = pool
        return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.terminate()
                self._pool.join()
                self._pool = None

    def map(self, fn: Callable[[list[Any]], list[Any]], items: Sequence[Any], default: Any) -> list[Any]:
        """``fn`` over ``items`` in chunks; a chunk not done by the deadline yields ``default`` per item."""
        if not items:
            return []
        size = max(1, math.ceil(len(items) / (self.workers * CHUNKS_PER_WORKER)))
        chunks = [list(items[i:i + size]) for i in range(0, len(items), size)]
        waves = math.ceil(len(chunks) / self.workers)
        with self._lock:
            pool = self._get()
            pending: list[AsyncResult] = [pool.apply_async(fn, (chunk,)) for chunk in chunks]
            deadline = time.monotonic() + self.timeout_s * waves
            out: list[Any] = []
            stuck = 0
            for chunk, result in zip(chunks, pending, strict=True):
                try:
                    out.extend(result.get(max(0.0, deadline - time.monotonic())))
                except multiprocessing.TimeoutError:
                    stuck += 1
                    out.extend([default] * len(chunk))
            if stuck:
                self.timeouts += stuck
                log.warning("math grading: %d chunk(s) still running after %.0f s: graded wrong, workers "
                            "restarted", stuck, self.timeout_s * waves)
                pool.terminate()
                pool.join()
                self._pool = None
        return out


_POOL: TimeoutPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool() -> TimeoutPool:
    """The process-wide pool (started on first use, stopped at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = TimeoutPool()
            atexit.register(_POOL.close)
        return _POOL


def verify_many(pairs: Sequence[tuple[str, str]], pool: TimeoutPool | None = None) -> list[bool]:
    """math-verify ``(predicted, gold)`` pairs in worker processes; a timed-out pair is False."""
    from fipo_engine.mathverify import verify_chunk  # light: the workers import only math-verify

    return (pool or shared_pool()).map(verify_chunk, list(pairs), False)
