"""Who owns a run directory: one run, for the life of the deployment.

Why: two control-plane databases (an embedded SQLite one, then a PostgreSQL one) both had a run 1,
and both pointed their job at ``var/runs/1/``. The second trainer overwrote the first run's spool,
re-sent its events under the wrong run, and its checkpoint rotation deleted checkpoints by name
order across both runs. A directory is therefore *claimed* by a run: ``owner.json`` holds the run's
UUID (``FIPO_RUN_UID``, issued by the control plane and stored on the run row). The launcher and the
trainer both check the claim before writing anything, and checkpoints are stamped with the owner so
that rotation and ``--resume`` only ever see the run's own.

Pure standard library: the launcher (no torch) and the trainer import it.
"""

from __future__ import annotations

import json
from pathlib import Path

from fipo_engine.fsutil import atomic_write_text

OWNER_FILE = "owner.json"
# Files that mean "a run already used this directory": a directory holding any of them and no
# owner record belongs to someone we cannot identify, so a claimed run must not take it over.
RUN_FILES = ("config.json", "events.jsonl", "checkpoints")


class RunDirConflict(RuntimeError):
    """The directory belongs to another run; nothing was written."""


def read_owner(run_dir: str | Path) -> str | None:
    """The UUID of the run that claimed ``run_dir``, or None (unclaimed, or not a directory)."""
    try:
        data = json.loads((Path(run_dir) / OWNER_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    owner = data.get("run_uid") if isinstance(data, dict) else None
    return str(owner) if owner else None


def claim_run_dir(run_dir: str | Path, run_uid: str | None, *, run_id: str | None = None) -> None:
    """Make ``run_dir`` the directory of run ``run_uid``, or raise ``RunDirConflict``.

    - claimed by the same run: fine (a resume, a redelivered launch);
    - claimed by another run: conflict;
    - unclaimed but already holding a run's files (``RUN_FILES``): conflict, since we cannot tell
      whose they are and must not overwrite them;
    - empty or new: the claim is written (atomically).
    ``run_uid`` None (a plain ``fipo train`` without a control plane) claims nothing and checks nothing.
    """
    if not run_uid:
        return
    path = Path(run_dir)
    owner = read_owner(path)
    if owner == run_uid:
        return
    if owner is not None:
        raise RunDirConflict(f"run directory {path} belongs to run {owner}, not to run {run_uid}; "
                             "refusing to start there (nothing was written)")
    used = [name for name in RUN_FILES if (path / name).exists()]
    if used:
        raise RunDirConflict(f"run directory {path} already holds another run's files ({', '.join(used)}) "
                             f"and no owner record; refusing to start run {run_uid} there (nothing was written)")
    path.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path / OWNER_FILE, json.dumps({"run_uid": run_uid, "run_id": run_id}) + "\n")
