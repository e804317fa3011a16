"""Signalling a process group: how the supervisor stops its children and a launcher cancels a job.

Each child (a daphne, a Celery worker, a job's wrapper) leads a process group of its own, so one
signal reaches everything it started (a trainer's data loader workers, a vLLM engine).
"""

from __future__ import annotations

import contextlib
import os


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to process group ``pgid``; a group that is already gone is not an error.

    PermissionError is ignored too: after a group ends its id may be reused by another user's
    process, and a stop must not fail on that race.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
