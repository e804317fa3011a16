"""The child-process supervisor behind ``runstack``: prefixed output, bounded stop, no orphans."""

from __future__ import annotations

import io
import sys
import textwrap
import time

import psutil
import pytest

from worker.supervisor import ChildExited, Supervisor


def py(source: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(source)]


def wait_for(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_output_is_prefixed_per_child_and_stop_returns_exit_codes() -> None:
    out = io.StringIO()
    sup = Supervisor(out, stop_timeout_s=5)
    sup.start("alpha", py("import time; print('one'); print('two', flush=True); time.sleep(30)"))
    sup.start("be", py("import sys, time; print('err line', file=sys.stderr, flush=True); time.sleep(30)"))
    wait_for(lambda: "two" in out.getvalue() and "err line" in out.getvalue())
    pids = [c.pid for c in sup.children.values()]
    codes = sup.stop()
    assert codes == {"be": -15, "alpha": -15}  # default SIGTERM action
    lines = out.getvalue().splitlines()
    assert "alpha  | one" in lines and "alpha  | two" in lines and "be     | err line" in lines
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout() -> None:
    out = io.StringIO()
    sup = Supervisor(out, stop_timeout_s=1.0)
    sup.start("stubborn", py("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('armed', flush=True)
        time.sleep(60)
    """))
    wait_for(lambda: "armed" in out.getvalue())
    assert sup.stop() == {"stubborn": -9}
    assert "SIGKILL" in out.getvalue()


def test_stop_sweeps_descendants_that_left_the_process_group() -> None:
    """A training job leads its own session (so Ctrl-C does not hit it); the supervisor still stops it."""
    out = io.StringIO()
    sup = Supervisor(out, stop_timeout_s=5)
    sup.start("worker", py("""
        import subprocess, sys, time
        job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        print('job', job.pid, flush=True)
        time.sleep(60)
    """))
    wait_for(lambda: "job " in out.getvalue())
    job = psutil.Process(int(out.getvalue().split("job ")[1].split()[0]))
    assert job.is_running()
    sup.stop()
    wait_for(lambda: not job.is_running() or job.status() == psutil.STATUS_ZOMBIE)


def test_wait_http_fails_fast_when_the_server_child_dies() -> None:
    sup = Supervisor(io.StringIO(), stop_timeout_s=2)
    sup.start("web", py("import sys; sys.exit(4)"))
    with pytest.raises(ChildExited, match="code 4"):
        sup.wait_http("http://127.0.0.1:9/", child="web", timeout_s=20)
    assert sup.exited() == ("web", 4)
    sup.stop()
