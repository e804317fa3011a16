"""What a Ray head answers never reaches a user's text, and the log view never waits long on a head.

A fake head (a plain HTTP server in a thread) answers what an internal service behind a user-given
address might: HTML with secrets in it, 200 with non-JSON, a slow answer. (Issue 14, item 2.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from worker.launchers.base import LauncherError, LaunchSpec
from worker.launchers.ray import RayJobsClient, RayLauncher, build_submission, job_url, status_from_info

SECRET = "internal-secret-7f3a"


class _Head(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, str, float]]] = {}

    def _answer(self) -> None:
        status, body, delay = self.answers.get(self.path, (404, "{}", 0.0))
        time.sleep(delay)
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the short-timeout test's client left
            self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def head() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Head)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    _Head.answers = {}


def _spec(tmp_path: Path, address: str) -> LaunchSpec:
    return LaunchSpec(run_id="3", config={"launcher": {"backend": "ray", "ray": {}}}, server_url="http://cp",
                      token="tok", workdir=tmp_path, log_path=tmp_path / "log", address=address)


def test_a_200_that_is_not_json_is_a_clean_error_without_the_body(head: str, tmp_path: Path) -> None:
    _Head.answers = {"/api/jobs/": (200, f"<html>{SECRET}</html>", 0.0)}
    with pytest.raises(LauncherError) as info:
        RayLauncher(attempts=1).start(_spec(tmp_path, head))
    assert str(info.value) == "the Ray head answered an unexpected response (HTTP 200, not JSON)"


@pytest.mark.parametrize("status", [400, 403, 500])
def test_an_error_answer_names_its_status_only(head: str, tmp_path: Path, status: int) -> None:
    _Head.answers = {"/api/jobs/": (status, f"Traceback ... {SECRET}", 0.0)}
    with pytest.raises(LauncherError) as info:
        RayLauncher(attempts=1).start(_spec(tmp_path, head))
    assert SECRET not in str(info.value) and f"HTTP {status}" in str(info.value)


def test_poll_and_logs_of_non_json_answers_raise_launcher_errors(head: str) -> None:
    _Head.answers = {"/api/jobs/fipo-run-3": (200, SECRET, 0.0), "/api/jobs/fipo-run-3/logs": (200, "[1, 2]", 0.0)}
    launcher = RayLauncher(attempts=1)
    for call in (lambda: launcher.poll(job_url(head, "fipo-run-3")),
                 lambda: launcher.read_log(job_url(head, "fipo-run-3"), Path("unused"))):
        with pytest.raises(LauncherError, match="unexpected response") as info:
            call()
        assert SECRET not in str(info.value)


def test_an_unknown_job_status_does_not_echo_it() -> None:
    status = status_from_info({"status": SECRET, "message": "x"})
    assert status.state == "unknown" and SECRET not in status.message


def test_the_log_view_makes_one_short_attempt(head: str) -> None:
    _Head.answers = {"/api/jobs/fipo-run-3/logs": (200, '{"logs": "late"}', 2.0)}
    launcher = RayLauncher(log_timeout_s=0.3)  # the worker's calls keep 5 attempts x 10 s
    started = time.monotonic()
    with pytest.raises(LauncherError, match="could not be reached after 1 attempts"):
        launcher.read_log(job_url(head, "fipo-run-3"), Path("unused"))
    assert time.monotonic() - started < 1.5


def test_the_deployment_head_and_variables_win_over_the_users(tmp_path: Path) -> None:
    config = {"launcher": {"backend": "ray", "ray": {"address": "http://evil:1", "env_vars": {
        "FIPO_RUN_TOKEN": "stolen", "FIPO_SERVER_URL": "http://evil", "PYTHONPATH": "/x", "NCCL_DEBUG": "INFO"}}}}
    spec = LaunchSpec(run_id="4", config=config, server_url="http://cp", token="tok", workdir=tmp_path,
                      log_path=tmp_path / "log", env={"PYTHONPATH": "/deployment"}, address="http://head:8265")
    env = build_submission(spec)["runtime_env"]["env_vars"]
    assert (env["FIPO_RUN_TOKEN"], env["FIPO_SERVER_URL"], env["PYTHONPATH"]) == ("tok", "http://cp", "/deployment")
    assert env["NCCL_DEBUG"] == "INFO"
    assert RayJobsClient("http://head:8265").address == "http://head:8265"
