"""Small file-system helpers shared by the trainer, the eval CLI and the worker.

Pure standard library and a leaf module (it imports nothing from the project), so that the job
wrapper, which must start in milliseconds and never imports torch, can use it too.
"""

from __future__ import annotations

import os
from pathlib import Path


def _tmp_path(path: Path) -> Path:
    # Beside the target (os.replace is atomic only within one file system) and hidden, so that a
    # temp file a crash left behind is never mistaken for the real one by a glob or a directory scan.
    return path.with_name(f".{path.name}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old content or the new, never a part.

    Why: the files written this way (a job's exit code, a run directory's owner record, the tracking
    spool's acknowledgement, an eval's progress) are read by other processes while they change.
    The content goes to a temp file beside ``path``, which is then renamed over it. Atomic against
    readers, not durable across a power cut (no fsync: the spool's acknowledgement is rewritten
    after every batch, and a lost update only means a few events are sent again).
    """
    target = Path(path)
    tmp = _tmp_path(target)
    tmp.write_bytes(data)
    os.replace(tmp, target)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> None:
    """``atomic_write_bytes`` for text (UTF-8 unless told otherwise)."""
    atomic_write_bytes(path, text.encode(encoding))
