"""The run lifecycle services: the transition guard, launch/cancel/reap through a launcher, tokens.

The launcher here is a small in-test fake registered under a test-only name (this file only); the
real local launcher with a real Celery worker is exercised by tests/worker.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from fipo_engine.registry import LAUNCHERS
from webapp.common.auth import token_hash
from webapp.common.errors import Conflict, PermissionDeniedError
from webapp.runs import services, tasks
from webapp.runs.models import ALLOWED_TRANSITIONS, Checkpoint, Run, RunStatus, RunTransition, StreamItem
from webapp.runs.selectors import run_can_resume, run_for_token
from webapp.tracking.services import events_ingest
from worker.launchers.base import (
    JobStatus,
    LauncherError,
    LaunchSpec,
    get_launcher,
    register_launcher,
)

pytestmark = pytest.mark.django_db

FAKE = "h4-test-fake"


@dataclass
class FakeLauncher:
    """Records calls; ``fail_start``/``poll_state`` script its answers."""

    name: str = FAKE
    started: list[LaunchSpec] = field(default_factory=list)
    cancelled: list[tuple[str, float]] = field(default_factory=list)
    fail_start: str | None = None
    poll_state: str = "running"
    can_resume: bool = True

    def start(self, spec: LaunchSpec) -> str:
        if self.fail_start:
            raise LauncherError(self.fail_start)
        self.started.append(spec)
        return f"fake-{spec.run_id}"

    def poll(self, handle: str) -> JobStatus:
        return JobStatus(state=self.poll_state, exit_code=1 if self.poll_state == "failed" else None)

    def cancel(self, handle: str, *, grace_s: float = 10.0) -> JobStatus:
        self.cancelled.append((handle, grace_s))
        return JobStatus(state="stopped", exit_code=-15)

    def read_log(self, handle: str, spec_log_path: Path, offset: int = 0) -> tuple[str, int]:
        return "", offset


@pytest.fixture
def fake() -> Iterator[FakeLauncher]:
    """A stand-in launcher, registered for this test only (left registered, it would be a valid
    ``launcher.backend`` and a listed name in every later test of the session)."""
    launcher = register_launcher(FakeLauncher())
    yield launcher
    LAUNCHERS.unregister(FAKE)


@pytest.fixture
def queued(draft_run: Run, member: Any, fake: FakeLauncher, django_capture_on_commit_callbacks: Any) -> Run:
    Run.objects.filter(pk=draft_run.pk).update(launcher=FAKE)
    draft_run.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.run_launch(run=draft_run, user=member)
    assert len(callbacks) == 3  # the run and team websocket notices, and launch_run.delay
    draft_run.refresh_from_db()
    return draft_run


def _statuses(run: Run) -> list[tuple[str | None, str]]:
    return list(RunTransition.objects.filter(run=run).order_by("id").values_list("from_status", "to_status"))


def test_every_disallowed_transition_is_refused_and_allowed_ones_are_recorded(draft_run: Run) -> None:
    for start in RunStatus.values:
        for target in RunStatus.values:
            Run.objects.filter(pk=draft_run.pk).update(status=start)
            before = RunTransition.objects.count()
            if target in ALLOWED_TRANSITIONS.get(start, frozenset()):
                assert services.run_transition(run_id=draft_run.pk, to=target, reason="matrix")
                assert RunTransition.objects.count() == before + 1
                last = RunTransition.objects.latest("id")
                assert (last.from_status, last.to_status, last.reason) == (start, target, "matrix")
            else:
                with pytest.raises(Conflict):
                    services.run_transition(run_id=draft_run.pk, to=target, reason="matrix")
                assert RunTransition.objects.count() == before
    assert RunStatus.SUCCEEDED not in ALLOWED_TRANSITIONS  # nothing leaves success
    for final in (RunStatus.FAILED, RunStatus.CANCELLED):  # only Resume leaves these
        assert ALLOWED_TRANSITIONS[final] == {RunStatus.QUEUED}


def test_each_transition_appends_a_status_stream_item(draft_run: Run) -> None:
    services.run_transition(run_id=draft_run.pk, to=RunStatus.QUEUED, reason="go")
    items = list(StreamItem.objects.filter(run=draft_run).order_by("pos"))
    assert [i.pos for i in items] == [1, 2]
    assert items[-1].type == "status"
    assert {k: items[-1].data[k] for k in ("run", "status", "from", "reason")} == {
        "run": draft_run.pk, "status": "queued", "from": "draft", "reason": "go"}
    draft_run.refresh_from_db()
    assert draft_run.stream_pos == 2


def test_expected_guard_makes_transitions_idempotent(draft_run: Run) -> None:
    assert not services.run_transition(run_id=draft_run.pk, to=RunStatus.STARTING, reason="x",
                                       expected=frozenset({RunStatus.QUEUED}))
    assert Run.objects.get(pk=draft_run.pk).status == RunStatus.DRAFT


def test_launch_issues_a_hashed_token_and_records_the_handle(queued: Run, fake: FakeLauncher, settings: Any,
                                                             tmp_path: Path) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_SERVER_URL = "http://control.example:8000"
    assert queued.status == RunStatus.QUEUED
    assert tasks.launch_run(queued.pk) is True
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.STARTING and run.handle == f"fake-{run.pk}"
    (spec,) = fake.started
    assert spec.run_id == str(run.pk) and spec.config == run.config
    assert spec.server_url == "http://control.example:8000"
    workdir = tmp_path / f"{run.pk}-{run.uid.hex[:12]}"  # unique to the run, not just its id
    assert spec.workdir == workdir and spec.log_path == workdir / "run.log"
    assert spec.run_uid == str(run.uid) and spec.resume is False
    assert run.token_hash == token_hash(spec.token) and spec.token not in run.token_hash
    assert run_for_token(token=spec.token) == run
    # a redelivered task finds the run started and does nothing
    assert tasks.launch_run(queued.pk) is False
    assert len(fake.started) == 1
    assert _statuses(run)[-2:] == [("draft", "queued"), ("queued", "starting")]


def test_launcher_error_fails_the_run_with_its_message(queued: Run, fake: FakeLauncher, settings: Any,
                                                       tmp_path: Path) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    fake.fail_start = "no such binary: fipo"
    tasks.launch_run(queued.pk)
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.FAILED
    assert "no such binary: fipo" in run.transitions.latest("id").reason


def test_launching_twice_or_by_a_viewer_is_refused(queued: Run, member: Any, viewer: Any, draft_run: Run) -> None:
    with pytest.raises(Conflict):
        services.run_launch(run=queued, user=member)
    with pytest.raises(PermissionDeniedError):
        services.run_cancel(run=queued, user=viewer)


def test_cancel_of_a_queued_run_is_immediate_and_the_launch_then_does_nothing(queued: Run, member: Any,
                                                                              fake: FakeLauncher) -> None:
    services.run_cancel(run=queued, user=member)
    assert Run.objects.get(pk=queued.pk).status == RunStatus.CANCELLED
    assert tasks.launch_run(queued.pk) is False
    assert fake.started == []


def test_cancel_of_a_running_job_stops_it_then_cancels(queued: Run, member: Any, fake: FakeLauncher, settings: Any,
                                                      tmp_path: Path, django_capture_on_commit_callbacks: Any) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_CANCEL_GRACE_S = 3.0
    tasks.launch_run(queued.pk)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.run_cancel(run=queued, user=member)
    assert len(callbacks) == 1  # cancel_run.delay, status unchanged until the job is stopped
    assert Run.objects.get(pk=queued.pk).status == RunStatus.STARTING
    assert tasks.cancel_run(queued.pk, "alice") is True
    assert fake.cancelled == [(f"fake-{queued.pk}", 3.0)]
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.CANCELLED
    assert "cancelled by alice" in run.transitions.latest("id").reason
    with pytest.raises(Conflict):
        services.run_cancel(run=run, user=member)


def test_a_trainer_failing_while_cancelled_is_recorded_as_cancelled(started_run: tuple[Run, str], member: Any,
                                                                    django_capture_on_commit_callbacks: Any) -> None:
    run, _ = started_run
    with django_capture_on_commit_callbacks(execute=False):
        services.run_cancel(run=run, user=member)
    events_ingest(run_id=run.pk, events=[{"seq": 1, "type": "status", "state": "failed", "message": "SIGTERM"}])
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "SIGTERM" in run.transitions.latest("id").reason
    assert tasks.cancel_run(run.pk) is False  # already final: nothing left to do


def test_reaper_marks_silent_runs_lost_and_trusts_a_dead_job(queued: Run, fake: FakeLauncher, settings: Any,
                                                              tmp_path: Path) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_HEARTBEAT_TIMEOUT_S = 60
    tasks.launch_run(queued.pk)
    assert tasks.reap_lost_runs() == []  # just started: not stale
    later = timezone.now() + timedelta(seconds=61)
    assert services.runs_reap_lost(now=later) == [queued.pk]
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.LOST
    assert "no heartbeat for" in run.transitions.latest("id").reason
    assert "running" in run.transitions.latest("id").reason  # what the launcher said
    # a trainer that was only cut off comes back
    token = "t-" + "x" * 30
    Run.objects.filter(pk=run.pk).update(token_hash=token_hash(token))
    events_ingest(run_id=run.pk, events=[{"seq": 1, "type": "log", "text": "still here"}])
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    # now the job dies without a word: the launcher's exit code wins over "lost"
    fake.poll_state = "failed"
    assert services.runs_reap_lost(now=timezone.now() + timedelta(seconds=61)) == [run.pk]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "exit code 1" in run.transitions.latest("id").reason


def test_reaper_takes_a_succeeded_job_as_the_runs_end(queued: Run, fake: FakeLauncher, settings: Any,
                                                       tmp_path: Path) -> None:
    """An OpenRLHF job's trainer never reports its end (issue 17): when its events stop and the launcher
    says the job succeeded, the run succeeded (it used to end as lost)."""
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_HEARTBEAT_TIMEOUT_S = 60
    tasks.launch_run(queued.pk)
    fake.poll_state = "succeeded"
    assert services.runs_reap_lost(now=timezone.now() + timedelta(seconds=61)) == [queued.pk]
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.SUCCEEDED and "job succeeded" in run.transitions.latest("id").reason


def test_an_openrlhf_job_that_ended_ends_its_run_at_the_next_reap(queued: Run, fake: FakeLauncher,
                                                                  settings: Any, tmp_path: Path) -> None:
    """Its tracker heartbeats until the job is gone, so its silence used to be the only sign of the end:
    a succeeded OpenRLHF job stayed ``running`` for a whole heartbeat window (issue 17, item 5)."""
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_HEARTBEAT_TIMEOUT_S = 180
    config = dict(queued.config)
    config["launcher"] = {**config["launcher"], "ray": {**config["launcher"]["ray"], "engine": "openrlhf"}}
    Run.objects.filter(pk=queued.pk).update(config=config)
    tasks.launch_run(queued.pk)
    services.run_transition(run_id=queued.pk, to=RunStatus.RUNNING, reason="first event")
    Run.objects.filter(pk=queued.pk).update(last_heartbeat=timezone.now())
    assert services.runs_reap_lost() == []  # still running: nothing to do
    fake.poll_state = "succeeded"
    assert services.runs_reap_lost() == [queued.pk]  # at once, not after 180 s of silence
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.SUCCEEDED and "job succeeded" in run.transitions.latest("id").reason


def test_a_native_job_is_not_polled_while_it_reports(queued: Run, fake: FakeLauncher, settings: Any,
                                                     tmp_path: Path) -> None:
    """A native trainer reports its own end; a live one is not asked about every tick."""
    settings.FIPO_RUNS_DIR = tmp_path
    tasks.launch_run(queued.pk)
    services.run_transition(run_id=queued.pk, to=RunStatus.RUNNING, reason="first event")
    Run.objects.filter(pk=queued.pk).update(last_heartbeat=timezone.now())
    fake.poll_state = "succeeded"
    assert services.runs_reap_lost() == []
    assert Run.objects.get(pk=queued.pk).status == RunStatus.RUNNING


def test_draft_only_delete_and_clone(draft_run: Run, member: Any, viewer: Any) -> None:
    clone = services.run_clone(user=member, run=draft_run)
    assert clone.name == "demo (copy)" and clone.config == draft_run.config and clone.status == RunStatus.DRAFT
    with pytest.raises(PermissionDeniedError):
        services.run_delete(user=viewer, run=clone)
    services.run_transition(run_id=draft_run.pk, to=RunStatus.QUEUED, reason="x")
    with pytest.raises(Conflict):
        services.run_delete(user=member, run=draft_run)
    services.run_delete(user=member, run=clone)
    assert not Run.objects.filter(pk=clone.pk).exists()


# ------------------------------------------------------------------------------------ resume
def _ended_with_checkpoint(queued: Run, fake: FakeLauncher, tmp_path: Path, status: str) -> Run:
    """A launched run whose job ended in ``status`` after reporting a checkpoint of step 2 that
    exists on disk (and one of step 1 that the rotation already deleted)."""
    tasks.launch_run(queued.pk)
    fake.poll_state = "unknown"
    kept = tmp_path / "checkpoints" / "step_000002"
    kept.mkdir(parents=True)
    Checkpoint.objects.create(run=queued, step=1, uri=str(tmp_path / "checkpoints" / "step_000001"))
    Checkpoint.objects.create(run=queued, step=2, uri=str(kept))
    services.run_transition(run_id=queued.pk, to=RunStatus.RUNNING, reason="first event")
    services.run_transition(run_id=queued.pk, to=status, reason="the job ended")
    Run.objects.filter(pk=queued.pk).update(cancel_requested_at=timezone.now() if status == "cancelled" else None)
    return Run.objects.get(pk=queued.pk)


@pytest.mark.parametrize("status", ["lost", "failed", "cancelled"])
def test_resume_continues_the_same_run_with_the_same_launcher_from_its_checkpoint(
        queued: Run, member: Any, fake: FakeLauncher, settings: Any, tmp_path: Path, status: str,
        django_capture_on_commit_callbacks: Any) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    run = _ended_with_checkpoint(queued, fake, tmp_path, status)
    assert run_can_resume(run=run, can_write=True) and not run_can_resume(run=run, can_write=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.run_resume(run=run, user=member)
    assert len(callbacks) == 3  # the websocket notices and launch_run.delay
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert tasks.launch_run(run.pk) is True  # what the worker does with it
    run.refresh_from_db()
    assert run.status == RunStatus.STARTING and run.cancel_requested_at is None
    first, second = fake.started
    assert (first.resume, second.resume) == (False, True)
    assert second.workdir == first.workdir and second.run_uid == first.run_uid == str(run.uid)
    assert second.token != first.token and run.token_hash == token_hash(second.token)
    assert _statuses(run)[-3:] == [("running", status), (status, "queued"), ("queued", "starting")]
    assert "resumed by alice from its newest checkpoint (the last reported: step 2)" in run.transitions.get(to_status="queued",
                                                                                   from_status=status).reason


def test_resume_is_refused_to_viewers_without_a_checkpoint_or_while_the_job_lives(
        queued: Run, member: Any, viewer: Any, fake: FakeLauncher, settings: Any, tmp_path: Path) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    run = _ended_with_checkpoint(queued, fake, tmp_path, "lost")
    with pytest.raises(PermissionDeniedError):
        services.run_resume(run=run, user=viewer)
    fake.poll_state = "running"  # lost, but the trainer is alive (cut off from the server)
    with pytest.raises(Conflict, match="still running"):
        services.run_resume(run=run, user=member)
    fake.poll_state, fake.can_resume = "unknown", False
    with pytest.raises(Conflict, match="not supported"):
        services.run_resume(run=run, user=member)
    fake.can_resume = True
    shutil.rmtree(tmp_path / "checkpoints")  # every checkpoint it reported is gone
    with pytest.raises(Conflict, match="no checkpoint"):
        services.run_resume(run=run, user=member)
    assert Run.objects.get(pk=run.pk).status == RunStatus.LOST
    services.run_transition(run_id=run.pk, to=RunStatus.SUCCEEDED, reason="x")
    with pytest.raises(Conflict, match="only lost, failed or cancelled"):
        services.run_resume(run=Run.objects.get(pk=run.pk), user=member)


def test_resume_api_and_the_run_page_list_only_checkpoints_that_exist(
        queued: Run, member: Any, viewer: Any, fake: FakeLauncher, settings: Any, tmp_path: Path,
        client_for: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FIPO_RUNS_DIR = tmp_path
    run = _ended_with_checkpoint(queued, fake, tmp_path, "failed")
    detail = client_for(viewer).get(f"/api/v1/runs/{run.pk}/").json()
    assert [c["step"] for c in detail["checkpoints"]] == [2]  # step 1 was rotated away
    assert detail["can_resume"] is False  # a viewer
    assert client_for(viewer).post(f"/api/v1/runs/{run.pk}/resume/").status_code == 403
    api = client_for(member)
    assert api.get(f"/api/v1/runs/{run.pk}/").json()["can_resume"] is True
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(f"/api/v1/runs/{run.pk}/resume/")
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued" and response.json()["can_resume"] is False
    assert api.post(f"/api/v1/runs/{run.pk}/resume/").status_code == 409


def test_a_resumed_run_is_not_reaped_for_its_previous_segments_silence(
        queued: Run, member: Any, fake: FakeLauncher, settings: Any, tmp_path: Path,
        django_capture_on_commit_callbacks: Any) -> None:
    """Failed before the fix: the reaper took the old last_heartbeat over the new status change."""
    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_HEARTBEAT_TIMEOUT_S = 60
    run = _ended_with_checkpoint(queued, fake, tmp_path, "lost")
    Run.objects.filter(pk=run.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False):
        services.run_resume(run=run, user=member)
    tasks.launch_run(run.pk)
    assert Run.objects.get(pk=run.pk).status == RunStatus.STARTING
    assert services.runs_reap_lost() == []
    assert services.runs_reap_lost(now=timezone.now() + timedelta(seconds=61)) == [run.pk]


def test_a_launch_that_never_recorded_a_job_says_so_when_reaped(queued: Run, settings: Any) -> None:
    """A worker killed while launching leaves a starting run without a handle: bounded by the reaper."""
    settings.FIPO_HEARTBEAT_TIMEOUT_S = 60
    services.run_transition(run_id=queued.pk, to=RunStatus.STARTING, reason="starting")
    assert services.runs_reap_lost(now=timezone.now() + timedelta(seconds=61)) == [queued.pk]
    run = Run.objects.get(pk=queued.pk)
    assert run.status == RunStatus.LOST and "no job was recorded" in run.transitions.latest("id").reason


def test_run_directories_are_unique_per_run_even_with_the_same_id(draft_run: Run, settings: Any,
                                                                   tmp_path: Path) -> None:
    """Two databases both have a run 1: their directories must differ (found with make run)."""
    settings.FIPO_RUNS_DIR = tmp_path
    twin = Run(pk=draft_run.pk, uid=uuid.uuid4())  # the same id in another database
    mine, theirs = services.run_paths(draft_run)[0], services.run_paths(twin)[0]
    assert mine != theirs and mine.parent == theirs.parent == tmp_path
    assert mine.name.startswith(f"{draft_run.pk}-")
    legacy = Run(pk=7, uid=None)  # created before runs had a uid: keeps its old directory
    assert services.run_paths(legacy)[0] == tmp_path / "7"


def test_cancel_finds_a_local_job_whose_launch_never_recorded_its_handle(draft_run: Run, settings: Any,
                                                                         tmp_path: Path) -> None:
    """Chaos "worker killed while launching": the job started, the handle never reached the row.
    Failed before the fix: the run was marked cancelled and the trainer kept running."""
    import sys

    from worker.launchers.local import LocalLauncher

    settings.FIPO_RUNS_DIR = tmp_path
    settings.FIPO_CANCEL_GRACE_S = 5.0
    for status in (RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING):
        services.run_transition(run_id=draft_run.pk, to=status, reason="x")
    workdir, log_path = services.run_paths(draft_run)
    spec = LaunchSpec(run_id=str(draft_run.pk), config={}, server_url="http://127.0.0.1:1", token="t",
                      workdir=workdir, log_path=log_path, run_uid=str(draft_run.uid))
    sleeper = LocalLauncher(lambda spec, config: [sys.executable, "-c", "import time; time.sleep(120)"])
    handle = sleeper.start(spec)
    try:
        assert Run.objects.get(pk=draft_run.pk).handle is None
        assert tasks.cancel_run(draft_run.pk, "alice") is True
        run = Run.objects.get(pk=draft_run.pk)
        assert run.status == RunStatus.CANCELLED and "job stopped" in run.transitions.latest("id").reason
        assert get_launcher("local").poll(handle).state == "stopped"
    finally:
        get_launcher("local").cancel(handle, grace_s=1.0)
