"""The ``local`` launcher: a run is a ``fipo train`` subprocess on the worker's machine.

Process layout::

    <python> -m worker.job_wrapper --exit-file WORKDIR/exit_code --   (new session: group leader)
        <python> -m fipo_engine.cli train WORKDIR/config.json --out WORKDIR --no-progress
        (environment: FIPO_SERVER_URL, FIPO_RUN_ID, FIPO_RUN_TOKEN: the token stays out of ``ps``)

The handle ``pid:<pid>:<create_time>:<workdir>`` carries everything needed to find the job again
from any process: the wrapper's pid, its start time (so a pid the kernel has since reused for
another program is not mistaken for the job) and the work directory holding ``exit_code`` (written
by the wrapper when the job ends) and ``cancel_requested`` (written by ``cancel``).

Cancelling signals the whole process group: SIGTERM first (the trainer writes a final checkpoint
and status if it can), SIGKILL to whatever is left after the grace period. Nothing here imports
Django; the web app's tasks call these functions and record what they return.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from fipo_engine.rundir import RunDirConflict, claim_run_dir
from worker.job_wrapper import read_exit_code
from worker.launchers.base import JobStatus, LauncherError, LaunchSpec, register_launcher
from worker.procgroup import signal_group
from worker.textio import decode_utf8_head

EXIT_FILE = "exit_code"
CANCEL_FILE = "cancel_requested"
HANDLE_FILE = "handle"
CONFIG_FILE = "config.json"

# Variables the training job never needs and must not see (it talks to the control plane over
# HTTP with its run token only): the web app's secrets and its database and broker addresses.
_WITHHELD_ENV = ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")

# Two start times closer than this are the same process (psutil rounds differently across calls).
_CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class LocalHandle:
    """The parsed form of a local job handle."""

    pid: int
    create_time: float
    workdir: Path

    def __str__(self) -> str:
        return f"pid:{self.pid}:{self.create_time:.3f}:{self.workdir}"

    @classmethod
    def parse(cls, handle: str) -> LocalHandle:
        parts = handle.split(":", 3)
        if len(parts) != 4 or parts[0] != "pid":
            raise LauncherError(f"not a local launcher handle: {handle!r}")
        try:
            return cls(pid=int(parts[1]), create_time=float(parts[2]), workdir=Path(parts[3]))
        except ValueError:
            raise LauncherError(f"not a local launcher handle: {handle!r}") from None


def train_command(spec: LaunchSpec, config_path: Path) -> list[str]:
    """The ``fipo train`` command line for a run (the interpreter running the worker, so the same venv).

    The server URL, run id and token reach the trainer through ``FIPO_SERVER_URL``, ``FIPO_RUN_ID``
    and ``FIPO_RUN_TOKEN`` (see ``job_env``), not the command line, which any local user can read.
    """
    command = [sys.executable, "-m", "fipo_engine.cli", "train", str(config_path), "--out", str(spec.workdir),
               "--no-progress"]
    return [*command, "--resume"] if spec.resume else command


def redact(command: Sequence[str], secret: str) -> str:
    """The command as text for logs, with the run token replaced."""
    return " ".join("***" if secret and part == secret else part for part in command)


def job_env(spec: LaunchSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    """The job's environment: the worker's minus the web app's secrets, plus the spec's and the run's
    tracking coordinates, unbuffered and offline."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _WITHHELD_ENV}
    env.update(spec.env)
    env.update({"FIPO_SERVER_URL": spec.server_url, "FIPO_RUN_ID": str(spec.run_id), "FIPO_RUN_TOKEN": spec.token})
    if spec.run_uid:
        env["FIPO_RUN_UID"] = spec.run_uid
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    # The wrapper is started by module name: make sure the checkout is importable from the job.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _process(handle: LocalHandle) -> psutil.Process | None:
    """The wrapper process if it still exists and really is the one we started (not a reused pid)."""
    try:
        proc = psutil.Process(handle.pid)
        if abs(proc.create_time() - handle.create_time) > _CREATE_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(handle.pid)
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


# Popen objects of jobs started by this process: kept so their exit status can be collected
# (otherwise a finished wrapper would stay a zombie until this process exits).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def _wait_group_gone(pgid: int, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pgid)  # the group leader is the wrapper; collect it if we are its parent
        if not _group_members(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def status_from_files(workdir: Path) -> JobStatus:
    """The final state of a job whose wrapper is gone, read from the files it and ``cancel`` leave."""
    code = read_exit_code(workdir / EXIT_FILE)
    cancelled = (workdir / CANCEL_FILE).exists()
    if cancelled:  # first: a trainer that saves and exits 0 on SIGTERM was still stopped early
        return JobStatus("stopped", "cancelled" + (f" (exit code {code})" if code is not None else ""), exit_code=code)
    if code == 0:
        return JobStatus("succeeded", "exit code 0", exit_code=0)
    if code is None:
        return JobStatus("unknown", "the job's process is gone and left no exit code (killed?)")
    if code < 0:
        return JobStatus("failed", f"killed by signal {signal.Signals(-code).name}", exit_code=code)
    return JobStatus("failed", f"exit code {code}", exit_code=code)


class LocalLauncher:
    """Runs each job as a subprocess of the calling machine. Stateless: all state is in the handle and workdir."""

    name = "local"
    can_resume = True  # the run directory (checkpoints, spool) is on this machine: --resume finds it

    def __init__(self, command: Callable[[LaunchSpec, Path], list[str]] = train_command) -> None:
        # ``command`` builds the job's argv; the default is ``fipo train``. Tests of the process
        # mechanics pass a small Python program instead of a whole trainer.
        self._command = command

    def start(self, spec: LaunchSpec) -> str:
        workdir = Path(spec.workdir)
        try:  # first: a directory of another run (its job, spool, checkpoints) is left untouched
            claim_run_dir(workdir, spec.run_uid, run_id=str(spec.run_id))
        except RunDirConflict as exc:
            raise LauncherError(str(exc)) from None
        workdir.mkdir(parents=True, exist_ok=True)
        existing = self._running_handle(workdir)
        if existing is not None:  # a retried launch task must not start a second trainer
            return existing
        for stale in (EXIT_FILE, CANCEL_FILE):
            (workdir / stale).unlink(missing_ok=True)
        config_path = workdir / CONFIG_FILE
        config_path.write_text(json.dumps(spec.config, indent=2))
        command = self._command(spec, config_path)
        wrapped = [sys.executable, "-m", "worker.job_wrapper", "--exit-file", str(workdir / EXIT_FILE), "--", *command]

        log_path = Path(spec.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"[launcher] {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {redact(command, spec.token)}\n".encode())
            log.flush()
            try:
                child = subprocess.Popen(
                    wrapped, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=workdir, env=job_env(spec), start_new_session=True, close_fds=True,
                )
            except OSError as exc:
                raise LauncherError(f"could not start the training process: {exc}") from exc
        _CHILDREN[child.pid] = child
        try:
            create_time = psutil.Process(child.pid).create_time()
        except psutil.NoSuchProcess:  # ended already; the handle still finds its exit file
            create_time = time.time()
        handle = str(LocalHandle(child.pid, create_time, workdir.resolve()))
        (workdir / HANDLE_FILE).write_text(handle)
        return handle

    def _running_handle(self, workdir: Path) -> str | None:
        try:
            handle = (workdir / HANDLE_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return handle if _process(LocalHandle.parse(handle)) is not None else None
        except LauncherError:
            return None

    def poll(self, handle: str) -> JobStatus:
        parsed = LocalHandle.parse(handle)
        _reap(parsed.pid)
        if _process(parsed) is not None:
            return JobStatus("running", f"pid {parsed.pid}")
        return status_from_files(parsed.workdir)

    def cancel(self, handle: str, *, grace_s: float = 10.0) -> JobStatus:
        parsed = LocalHandle.parse(handle)
        # The wrapper leads its own session, so its pid is the group id. Signal the group while the
        # wrapper is alive, or after it ended if members are left and its pid has not been reused
        # (a reused pid leading its own session would make us signal a stranger's group).
        alive = _process(parsed) is not None
        leftovers = not alive and not psutil.pid_exists(parsed.pid) and bool(_group_members(parsed.pid))
        if not alive and not leftovers:  # already over: report how it ended, not "cancelled"
            return status_from_files(parsed.workdir)
        (parsed.workdir / CANCEL_FILE).touch()
        signal_group(parsed.pid, signal.SIGTERM)
        if not _wait_group_gone(parsed.pid, grace_s):
            signal_group(parsed.pid, signal.SIGKILL)
            _wait_group_gone(parsed.pid, 5.0)
        return status_from_files(parsed.workdir)

    def read_log(self, handle: str, spec_log_path: Path, offset: int = 0, max_bytes: int = 1 << 20) -> tuple[str, int]:
        """Up to ``max_bytes`` of log from byte ``offset``; never splits a UTF-8 character."""
        try:
            with open(spec_log_path, "rb") as f:
                f.seek(offset)
                data = f.read(max_bytes)
        except FileNotFoundError:
            return "", offset
        text, consumed = decode_utf8_head(data)
        return text, offset + consumed


local_launcher = register_launcher(LocalLauncher())
