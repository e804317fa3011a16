"""Run one command and record how it ended: ``python -m worker.job_wrapper --exit-file F -- CMD ...``.

Why a wrapper: the Celery worker that starts a training job is often not the process that later
polls or cancels it (another worker, or the same one after a restart). Only a process's parent
can read its exit status, so the job's parent is this tiny wrapper, which lives exactly as long as
the job and writes the exit code to a file that any process can read.

Signals: the launcher starts the wrapper as the leader of a new process group and stops a job by
signalling the whole group. SIGTERM and SIGINT therefore reach the job directly; the wrapper only
notes them and keeps waiting, so the exit code of a job that shuts down gracefully is still
recorded. SIGKILL of the group ends both, and then no exit file is written (the launcher reads
that as "stopped" if a cancel was requested, otherwise as a job that vanished).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from fipo_engine.fsutil import atomic_write_text


def write_exit_code(path: Path, code: int) -> None:
    """Write ``code`` atomically, so a reader sees either nothing or the whole number."""
    atomic_write_text(path, f"{code}\n")


def read_exit_code(path: Path) -> int | None:
    """The recorded exit code, or None when the job has not ended (or was killed with its wrapper)."""
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _note_signal(signum: int, _frame: object) -> None:
    # A Python-level handler, not SIG_IGN: ignored dispositions survive exec() and the job would
    # inherit them, but handlers are reset to the default in the child.
    print(f"[job_wrapper] received signal {signum}; waiting for the job to stop", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.job_wrapper", description=__doc__.split("\n")[0])
    parser.add_argument("--exit-file", required=True, type=Path, help="where to write the job's exit code")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the job command, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _note_signal)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"[job_wrapper] could not start {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        write_exit_code(args.exit_file, 127)
        return 127
    code = child.wait()  # retried across signals (PEP 475)
    write_exit_code(args.exit_file, code)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
