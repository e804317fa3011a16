"""Runs: the stored config, the lifecycle with its transition log, the run token, checkpoints, and
the per-run stream that websockets replay (written and read through ``webapp.runs.stream``).

Status changes happen only in ``webapp.runs.services.run_transition`` (row lock, allowed-transition
check, a ``RunTransition`` row, a stream item, and a websocket notice after commit).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


# The lifecycle of docs/control-plane.md "Run lifecycle". ``lost`` (no heartbeat for FIPO_HEARTBEAT_TIMEOUT_S) is not final:
# a trainer that was only cut off comes back to ``running`` with its next event, and the run can
# still be cancelled (which kills the job if it is alive).
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.DRAFT: frozenset({RunStatus.QUEUED}),
    RunStatus.QUEUED: frozenset({RunStatus.STARTING, RunStatus.FAILED, RunStatus.CANCELLED}),
    RunStatus.STARTING: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.LOST}),
    RunStatus.LOST: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.QUEUED}
    ),
    # Resume (``services.run_resume``): the same run continues from its newest checkpoint.
    RunStatus.FAILED: frozenset({RunStatus.QUEUED}),
    RunStatus.CANCELLED: frozenset({RunStatus.QUEUED}),
}
FINAL_STATUSES: frozenset[str] = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})
# Runs a user may resume from a checkpoint ("final" for the job, not for the run: Resume starts a
# new segment of the same run).
RESUMABLE_STATUSES: frozenset[str] = frozenset({RunStatus.LOST, RunStatus.FAILED, RunStatus.CANCELLED})
# States in which a job may exist: these can be cancelled and their run token works.
ACTIVE_STATUSES: frozenset[str] = frozenset(
    {RunStatus.QUEUED, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.LOST}
)


class Run(models.Model):
    name = models.CharField(max_length=200)
    # Unique for the life of the deployment, unlike the id (a second database starts again at 1):
    # it names the run's directory and claims it (fipo_engine.rundir). Null only for runs created
    # before it existed, which keep their old directory ``<id>/``.
    uid = models.UUIDField(default=uuid.uuid4, null=True, unique=True, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="runs"
    )
    # The exact, fully resolved config (fipo_engine.config.RunConfig as JSON) and its schema version.
    config = models.JSONField()
    schema_version = models.PositiveIntegerField()
    preset = models.CharField(max_length=100, null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.DRAFT)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    launcher = models.CharField(max_length=32, default="local")
    handle = models.CharField(max_length=500, null=True, blank=True)
    # SHA-256 of the run token given to the launcher; the plain token is never stored.
    token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # Tracking state: highest contiguous event seq held, last stream position, latest metric step.
    acked_seq = models.BigIntegerField(default=0)
    max_seq = models.BigIntegerField(default=0)  # highest seq held (== acked_seq when there is no gap)
    stream_pos = models.BigIntegerField(default=0)
    last_step = models.IntegerField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("team", "-created_at"), name="run_team_created_idx"),
            models.Index(fields=("status", "last_heartbeat"), name="run_status_heartbeat_idx"),
        )

    def __str__(self) -> str:
        return f"run {self.pk} {self.name!r} ({self.status})"


class RunTransition(models.Model):
    """One status change. Its id orders the per-user stream of ``/ws/runs/``."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="transitions")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=16, null=True, blank=True)
    to_status = models.CharField(max_length=16)
    reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("id",)
        indexes = (models.Index(fields=("run", "id"), name="transition_run_idx"),)


class Checkpoint(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.IntegerField()
    uri = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("step", "id")


class StreamItem(models.Model):
    """One item of a run's stream (``pos`` increases per run); ``seq`` is set for ingested events.

    The unique (run, seq) constraint is what makes ingest idempotent: an event is held at most once.

    The runs app owns the stream because a status change (``services.run_transition``) must append
    to it; ``webapp.tracking`` appends ingested events through ``webapp.runs.stream``, so the
    dependency points one way (tracking -> runs). The model moved here from ``webapp.tracking`` and
    keeps that app's table name, so no data moved (migrations runs 0005 / tracking 0005).
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="stream_items")
    pos = models.BigIntegerField()
    seq = models.BigIntegerField(null=True, blank=True)
    type = models.CharField(max_length=16)
    data = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "tracking_streamitem"
        ordering = ("run", "pos")
        constraints = (
            models.UniqueConstraint(fields=("run", "pos"), name="streamitem_run_pos_unique"),
            models.UniqueConstraint(
                fields=("run", "seq"), condition=models.Q(seq__isnull=False), name="streamitem_run_seq_unique"
            ),
        )
