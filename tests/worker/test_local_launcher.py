"""The local launcher's process mechanics, with small real Python programs standing in for the trainer.

Each test starts real processes and checks what the operating system says about them (pids,
process groups, exit files); nothing is mocked. The real ``fipo train`` is exercised by the
lifecycle tests in ``test_stack_lifecycle.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from worker.launchers import LauncherError, LaunchSpec, get_launcher
from worker.launchers.local import (
    CANCEL_FILE,
    EXIT_FILE,
    LocalHandle,
    LocalLauncher,
    _group_members,
    job_env,
    train_command,
)

ROOT = Path(__file__).resolve().parents[2]


def program(source: str) -> Callable[[LaunchSpec, Path], list[str]]:
    """A launcher command that runs ``source`` with the config path as argv[1]."""
    code = textwrap.dedent(source)
    return lambda spec, config_path: [sys.executable, "-c", code, str(config_path)]


def make_spec(tmp_path: Path, **env: str) -> LaunchSpec:
    return LaunchSpec(
        run_id="7", config={"trainer": {"total_steps": 2}}, server_url="http://127.0.0.1:1",
        token="tok-secret-123", workdir=tmp_path / "job", log_path=tmp_path / "job" / "run.log", env=env,
    )


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def wait_final(launcher: LocalLauncher, handle: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while (status := launcher.poll(handle)).state == "running":
        assert time.monotonic() < deadline, "job still running"
        time.sleep(0.05)
    return status


def test_local_is_registered() -> None:
    assert isinstance(get_launcher("local"), LocalLauncher)


def test_train_command_is_fipo_train_and_keeps_the_token_off_the_command_line(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    config_path = tmp_path / "job" / "config.json"
    cmd = train_command(spec, config_path)
    assert cmd[:5] == [sys.executable, "-m", "fipo_engine.cli", "train", str(config_path)]
    assert cmd[cmd.index("--out") + 1] == str(spec.workdir)
    assert spec.token not in cmd
    env = job_env(spec)
    assert (env["FIPO_SERVER_URL"], env["FIPO_RUN_ID"], env["FIPO_RUN_TOKEN"]) == (spec.server_url, "7", spec.token)


def test_job_env_withholds_web_secrets_and_sets_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = {"PATH": "/bin", "DJANGO_SECRET_KEY": "s", "DATABASE_URL": "postgres://x", "REDIS_URL": "redis://y"}
    env = job_env(make_spec(tmp_path, EXTRA="1"), base=base)
    assert env["EXTRA"] == "1" and env["PATH"] == "/bin"
    assert env["PYTHONUNBUFFERED"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert not {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} & env.keys()
    assert str(ROOT) in env["PYTHONPATH"].split(os.pathsep)


def test_success_writes_config_captures_output_and_exit_code(tmp_path: Path) -> None:
    launcher = LocalLauncher(program("""
        import json, os, sys
        cfg = json.load(open(sys.argv[1]))
        print("steps", cfg["trainer"]["total_steps"], "unbuffered", os.environ["PYTHONUNBUFFERED"])
        print("to stderr", file=sys.stderr)
        print("secret visible:", "DJANGO_SECRET_KEY" in os.environ)
        print("run", os.environ["FIPO_RUN_ID"], "reversed token", os.environ["FIPO_RUN_TOKEN"][::-1])
    """))
    spec = make_spec(tmp_path)
    handle = launcher.start(spec)
    assert LocalHandle.parse(handle).workdir == spec.workdir.resolve()
    status = wait_final(launcher, handle)
    assert (status.state, status.exit_code) == ("succeeded", 0)
    assert json.loads((spec.workdir / "config.json").read_text()) == spec.config
    log, offset = launcher.read_log(handle, spec.log_path)
    assert "steps 2 unbuffered 1" in log and "to stderr" in log and "secret visible: False" in log
    assert "run 7 reversed token 321-terces-kot" in log
    assert "tok-secret-123" not in log  # neither the command line nor the launcher's header show it
    assert offset == spec.log_path.stat().st_size


def test_failure_reports_exit_code(tmp_path: Path) -> None:
    launcher = LocalLauncher(program("import sys; print('boom'); sys.exit(3)"))
    status = wait_final(launcher, launcher.start(make_spec(tmp_path)))
    assert (status.state, status.exit_code) == ("failed", 3)
    assert "exit code 3" in status.message


def test_missing_executable_is_a_failed_job(tmp_path: Path) -> None:
    launcher = LocalLauncher(lambda spec, cfg: ["/nonexistent/fipo-train"])
    status = wait_final(launcher, launcher.start(make_spec(tmp_path)))
    assert (status.state, status.exit_code) == ("failed", 127)


def test_poll_from_another_process_sees_the_exit_code(tmp_path: Path) -> None:
    """The worker that polls is often not the one that started the job: the exit file carries the status."""
    launcher = LocalLauncher(program("import sys, time; time.sleep(0.3); sys.exit(5)"))
    handle = launcher.start(make_spec(tmp_path))
    probe = textwrap.dedent(f"""
        import time
        from worker.launchers import get_launcher
        launcher = get_launcher("local")
        while (s := launcher.poll({handle!r})).state == "running":
            time.sleep(0.05)
        print(s.state, s.exit_code)
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.split() == ["failed", "5"], out.stderr


def test_start_is_idempotent_while_the_job_runs(tmp_path: Path) -> None:
    launcher = LocalLauncher(program("import time; time.sleep(30)"))
    spec = make_spec(tmp_path)
    first = launcher.start(spec)
    try:
        assert launcher.start(spec) == first
        assert launcher.poll(first).state == "running"
    finally:
        launcher.cancel(first, grace_s=2)


def test_cancel_lets_a_graceful_job_finish_its_shutdown(tmp_path: Path) -> None:
    """SIGTERM reaches the job, which writes its final checkpoint; the wrapper records the exit code."""
    launcher = LocalLauncher(program("""
        import signal, sys, time, pathlib
        def stop(signum, frame):
            pathlib.Path("final_checkpoint").write_text("saved")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("re" + "ady", flush=True)  # not in the logged command line
        time.sleep(60)
    """))
    spec = make_spec(tmp_path)
    handle = launcher.start(spec)
    wait_for(lambda: "\nready" in spec.log_path.read_text())
    status = launcher.cancel(handle, grace_s=10)
    assert status.state == "stopped" and status.exit_code == 0
    assert (spec.workdir / "final_checkpoint").read_text() == "saved"
    assert (spec.workdir / CANCEL_FILE).exists()
    assert launcher.poll(handle).state == "stopped"


def test_cancel_kills_a_stubborn_job_and_its_children_after_the_grace_period(tmp_path: Path) -> None:
    launcher = LocalLauncher(program("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c",
                                  "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        open("grandchild.pid", "w").write(str(child.pid))
        time.sleep(60)
    """))
    spec = make_spec(tmp_path)
    handle = launcher.start(spec)
    wait_for(lambda: (spec.workdir / "grandchild.pid").exists() and (spec.workdir / "grandchild.pid").read_text() != "")
    grandchild = int((spec.workdir / "grandchild.pid").read_text())
    pgid = LocalHandle.parse(handle).pid
    assert len(_group_members(pgid)) == 3  # wrapper, job, job's child
    started = time.monotonic()
    status = launcher.cancel(handle, grace_s=1.0)
    assert time.monotonic() - started >= 1.0
    assert status.state == "stopped" and status.exit_code is None  # SIGKILL: no exit file
    assert not _group_members(pgid)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_cancel_after_the_end_reports_how_it_ended(tmp_path: Path) -> None:
    launcher = LocalLauncher(program("print('done')"))
    spec = make_spec(tmp_path)
    handle = launcher.start(spec)
    wait_final(launcher, handle)
    assert launcher.cancel(handle, grace_s=1).state == "succeeded"
    assert not (spec.workdir / CANCEL_FILE).exists()


def test_a_killed_job_is_unknown_not_succeeded(tmp_path: Path) -> None:
    """SIGKILL of the whole group (OOM killer, machine trouble) leaves no exit file: the reaper decides."""
    launcher = LocalLauncher(program("import time; print('u' + 'p', flush=True); time.sleep(60)"))
    spec = make_spec(tmp_path)
    handle = launcher.start(spec)
    wait_for(lambda: "\nup" in spec.log_path.read_text())
    os.killpg(LocalHandle.parse(handle).pid, signal.SIGKILL)
    status = wait_final(launcher, handle)
    assert status.state == "unknown" and status.exit_code is None
    assert not (spec.workdir / EXIT_FILE).exists()


def test_a_reused_pid_is_not_the_job(tmp_path: Path) -> None:
    """A handle whose start time does not match the live process with that pid is a finished job."""
    me = psutil.Process()
    stale = str(LocalHandle(me.pid, me.create_time() - 1000.0, tmp_path))
    assert get_launcher("local").poll(stale).state == "unknown"
    assert get_launcher("local").cancel(stale, grace_s=0.1).state == "unknown"  # and we are still alive
    assert psutil.pid_exists(me.pid)


def test_handle_round_trip_and_garbage(tmp_path: Path) -> None:
    handle = LocalHandle(123, 1700000000.25, tmp_path / "a:b")
    assert LocalHandle.parse(str(handle)) == handle
    for bad in ("", "ray:abc", "pid:x:1:/w", "pid:1:/w"):
        with pytest.raises(LauncherError):
            get_launcher("local").poll(bad)


def test_read_log_never_splits_a_character(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_bytes("step 1 é\n".encode() + "ü".encode()[:1])
    launcher = get_launcher("local")
    text, offset = launcher.read_log("unused", log)
    assert text == "step 1 é\n" and offset == len("step 1 é\n".encode())
    with open(log, "ab") as f:
        f.write("ü".encode()[1:] + b" done\n")
    text, offset = launcher.read_log("unused", log, offset)
    assert text == "ü done\n" and offset == log.stat().st_size
    assert launcher.read_log("unused", tmp_path / "missing.log", 5) == ("", 5)


def test_a_directory_claimed_by_another_run_is_refused_untouched_and_resume_adds_the_flag(tmp_path: Path) -> None:
    """Two databases' run 1 with the same workdir: the second launch fails with a reason, the first
    run's files stay as they were (found with `make run` on SQLite, then PostgreSQL)."""
    import dataclasses

    launcher = LocalLauncher(program("import sys, pathlib; print('ran', sys.argv[1])"))
    first = dataclasses.replace(make_spec(tmp_path), run_uid="uid-first")
    wait_final(launcher, launcher.start(first))
    assert json.loads((first.workdir / "owner.json").read_text())["run_uid"] == "uid-first"
    before = {p.name: p.read_bytes() for p in first.workdir.iterdir() if p.is_file()}
    second = dataclasses.replace(first, run_uid="uid-second", config={"other": True})
    with pytest.raises(LauncherError, match="belongs to run uid-first"):
        launcher.start(second)
    assert {p.name: p.read_bytes() for p in first.workdir.iterdir() if p.is_file()} == before
    assert job_env(first, base={})["FIPO_RUN_UID"] == "uid-first"
    resumed = dataclasses.replace(first, resume=True)
    assert train_command(resumed, first.workdir / "config.json")[-1] == "--resume"
    assert "--resume" not in train_command(first, first.workdir / "config.json")
