"""Start, watch and stop a few long-lived child processes (web server, Celery worker, beat).

Used by ``manage.py runstack`` (the one-command embedded stack) and by the tests that run the real
stack. Three promises:

* every child's output appears on one stream, line by line, prefixed with the child's name;
* ``stop()`` leaves nothing behind: SIGTERM to each child's process group, a bounded wait, then
  SIGKILL; each child leads its own group, so a terminal's Ctrl-C reaches only the supervisor,
  which then stops the children in order instead of racing them;
* children die with the supervisor even if it is killed outright (Linux parent-death signal), and
  processes they started in sessions of their own are swept up by ``stop()`` too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import http.client
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import psutil

from worker.procgroup import signal_group

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:  # runs in the forked child before exec: no imports, no locks
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    reader: threading.Thread
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid


class ChildExited(RuntimeError):
    """A child the caller was waiting on ended first."""


class Supervisor:
    """A set of named child processes with prefixed output and a clean, bounded stop."""

    def __init__(self, out: TextIO | None = None, *, stop_timeout_s: float = 20.0) -> None:
        self.out = out if out is not None else sys.stdout
        self.stop_timeout_s = stop_timeout_s
        self.children: dict[str, Child] = {}
        self._lock = threading.Lock()
        self._width = 6
        self._pre_exec = _parent_death_signal()

    # ------------------------------------------------------------------------------- output
    def say(self, name: str, text: str) -> None:
        with self._lock:
            for line in text.splitlines() or [""]:
                self.out.write(f"{name:<{self._width}} | {line}\n")
            self.out.flush()

    def _pump(self, name: str, stream: Iterable[bytes]) -> None:
        for raw in stream:
            self.say(name, raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    # ------------------------------------------------------------------------------ control
    def start(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None,
              cwd: str | Path | None = None) -> Child:
        """Start ``argv`` as a child named ``name`` (its own process group, output prefixed)."""
        if name in self.children:
            raise ValueError(f"a child named {name!r} is already running")
        self._width = max(self._width, len(name))
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
            preexec_fn=self._pre_exec,  # a one-call ctypes hook: takes no Python locks after fork
        )
        assert process.stdout is not None
        reader = threading.Thread(target=self._pump, args=(name, process.stdout), name=f"out-{name}", daemon=True)
        reader.start()
        child = Child(name, argv, process, reader)
        self.children[name] = child
        return child

    def exited(self) -> tuple[str, int] | None:
        """The first child found to have ended, with its return code, or None."""
        for name, child in self.children.items():
            code = child.process.poll()
            if code is not None:
                return name, code
        return None

    def wait_http(self, url: str, *, child: str | None = None, timeout_s: float = 60.0,
                  give_up: Callable[[], bool] = lambda: False) -> float:
        """Wait until ``url`` answers any HTTP response; fail early if ``child`` ends. Returns seconds
        waited, or -1.0 when ``give_up()`` became true first (e.g. Ctrl-C during start-up)."""
        started = time.monotonic()
        while True:
            if give_up():
                return -1.0
            if child is not None and (code := self.children[child].process.poll()) is not None:
                raise ChildExited(f"{child} exited with code {code} before {url} answered")
            if _answers(url):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s")
            time.sleep(0.2)

    def stop(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Stop the named children (default: all, newest first); return their exit codes.

        SIGTERM goes to every group at once so their shutdowns overlap; whatever is alive after
        ``stop_timeout_s`` gets SIGKILL. Every group is then swept once more with SIGKILL, which
        catches grandchildren a child left behind.
        """
        chosen = [self.children[n] for n in (names or reversed(list(self.children)))]
        # Descendants that left the child's process group (e.g. training jobs, which lead their own
        # sessions) are not reached by the group signals below: note them now, stop them at the end.
        descendants = [d for child in chosen for d in _descendants(child.pid)]
        for child in chosen:
            if child.process.poll() is None:
                self.say(child.name, f"stopping (pid {child.pid})")
                signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        codes: dict[str, int] = {}
        for child in chosen:
            try:
                codes[child.name] = child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(child.name, f"did not stop within {self.stop_timeout_s:.0f}s: SIGKILL")
                signal_group(child.pid, signal.SIGKILL)
                codes[child.name] = child.process.wait()
            signal_group(child.pid, signal.SIGKILL)  # leftovers of the group, if any
            child.reader.join(timeout=2.0)
            del self.children[child.name]
        _terminate(descendants, timeout_s=min(10.0, self.stop_timeout_s))
        return codes

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    """True when ``url`` gives any HTTP response (a 404 or 401 still means the server is up)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=2.0)
    try:
        conn.request("GET", parts.path or "/")
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _terminate(processes: list[psutil.Process], *, timeout_s: float) -> None:
    """SIGTERM whichever of ``processes`` still run (pid reuse is checked by psutil), SIGKILL after a wait."""
    alive = [p for p in processes if _running(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    while (alive := [p for p in alive if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for a reaper we do not control)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# ------------------------------------------------------------------ the control plane's processes
def web_command(host: str, port: int, *, access_log: str | Path | None = None) -> list[str]:
    """daphne serving the ASGI app (HTTP + websockets); ``access_log`` moves the per-request lines
    (one per trainer POST) out of the console into a file."""
    argv = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "--proxy-headers"]
    if access_log is not None:
        argv += ["--access-log", str(access_log)]
    return [*argv, "webapp.asgi:application"]


def worker_command(*, concurrency: int = 4, name: str = "fipo") -> list[str]:
    """A Celery worker. Threads, not prefork: tasks only start/poll/stop subprocesses and write rows,
    and a thread pool lets a slow cancel (grace period) run beside a launch on a 2-core machine."""
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-P", "threads",
            "-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat"]


def beat_command(schedule_file: str | Path | None = None) -> list[str]:
    """Celery beat (the periodic reaper of lost runs). Without ``schedule_file`` the setting decides."""
    argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat", "--loglevel", "INFO"]
    return [*argv, "-s", str(schedule_file)] if schedule_file else argv
