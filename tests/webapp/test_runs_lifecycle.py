"""The run lifecycle services: the transition guard, launch/cancel/reap through a launcher, tokens.

The launcher here is a small in-test fake registered under a test-only name (this file only); the
real local launcher with a real Celery worker is exercised by tests/worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from webapp.common.auth import token_hash
from webapp.common.errors import Conflict, PermissionDeniedError
from webapp.runs import services, tasks
from webapp.runs.models import ALLOWED_TRANSITIONS, Run, RunStatus, RunTransition
from webapp.runs.selectors import run_for_token
from webapp.tracking.models import StreamItem
from webapp.tracking.services import events_ingest
from worker.launchers.base import (
    JobStatus,
    LauncherError,
    LaunchSpec,
    get_launcher,
    launcher_names,
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
def fake() -> FakeLauncher:
    if FAKE not in launcher_names():
        register_launcher(FakeLauncher())
    launcher = get_launcher(FAKE)
    launcher.started.clear()
    launcher.cancelled.clear()
    launcher.fail_start, launcher.poll_state = None, "running"
    return launcher


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
    for final in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
        assert final not in ALLOWED_TRANSITIONS  # nothing leaves a final state


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
    assert spec.workdir == tmp_path / str(run.pk) and spec.log_path == tmp_path / str(run.pk) / "run.log"
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
