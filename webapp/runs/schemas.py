"""Bodies of the runs API, for the OpenAPI schema only (the views answer with plain dicts built by
``run_data``/``run_detail_data``; tests/webapp/test_openapi_conformance.py checks them against these).

A run's configuration is ``fipo_engine.config.RunConfig`` itself: drf-spectacular serves the pydantic
model's own JSON Schema as the ``RunConfig`` component, so the form, the trainer and the API share
one definition."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fipo_engine.config import RunConfig
from webapp.common.schema import enum_field, object_serializer
from webapp.runs.models import RunStatus

RunStatusField = enum_field("RunStatus", RunStatus.values, "A run's state (docs/control-plane.md \"Run lifecycle\").")


@extend_schema_field(RunConfig)
class RunConfigField(serializers.JSONField):
    """A full run configuration (``RunConfig``)."""


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


RunSummarySerializer = object_serializer("RunSummary", {
    key: serializers.FloatField(allow_null=True)
    for key in ("reward/mean", "accuracy/mean", "response_length/mean")
}, "The latest value of three headline metrics (null until the trainer sent one).")


class RunSerializer(serializers.Serializer):
    """A run as lists show it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    team = TeamRefSerializer()
    created_by = serializers.CharField(allow_blank=True, help_text="Username; empty when the user was deleted.")
    status = RunStatusField()
    preset = serializers.CharField(allow_null=True, help_text="The preset it was created from, if any.")
    launcher = serializers.CharField(help_text="local or ray (the config's launcher.backend).")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_step = serializers.IntegerField(allow_null=True)
    summary = RunSummarySerializer()
    can_launch = serializers.BooleanField(help_text="The caller may launch it now.")
    can_cancel = serializers.BooleanField(help_text="The caller may cancel it now.")
    url = serializers.CharField(help_text="The run's page.")


TransitionSerializer = object_serializer("Transition", {
    "at": serializers.DateTimeField(),
    "from": RunStatusField(allow_null=True, help_text="null for the first."),
    "to": RunStatusField(),
    "reason": serializers.CharField(allow_blank=True),
}, "One status change of a run's lifecycle.")


class CheckpointSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    uri = serializers.CharField()
    at = serializers.DateTimeField()


class RunDetailSerializer(RunSerializer):
    """A run with its configuration, history and the tail of its local log."""

    stream_pos = serializers.IntegerField(help_text="Position of the run's stream this answer is at least as new as.")
    config = RunConfigField()
    schema_version = serializers.IntegerField()
    transitions = TransitionSerializer(many=True)
    checkpoints = CheckpointSerializer(many=True)
    can_resume = serializers.BooleanField()
    handle = serializers.CharField(allow_null=True, help_text="The job's handle: shown to the team's owners only.")
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    log_tail = serializers.CharField(allow_blank=True, help_text="Local runs only (empty for other launchers).")


class RunListSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Runs matching the filters (all pages).")
    results = RunSerializer(many=True)


class RunCreateRequestSerializer(serializers.Serializer):
    """A new draft: from a preset with dotted-path overrides, or from a (partial) config whose
    missing fields take the engine's defaults."""

    name = serializers.CharField()
    team = serializers.IntegerField()
    preset = serializers.CharField(required=False, help_text="A name from /api/v1/config/presets.")
    overrides = serializers.DictField(required=False, help_text='Dotted config paths to values, e.g. {"trainer.lr": 1e-4}.')
    config = RunConfigField(required=False, help_text="A full or partial configuration.")


class RunLogSerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, help_text="The log from the requested offset (UTF-8, at most 256 KiB).")
    offset = serializers.IntegerField(help_text="Byte offset to ask for next.")


class ConfigPresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    config = RunConfigField(help_text="The preset's full resolved configuration.")


class CatalogMetricSerializer(serializers.Serializer):
    name = serializers.CharField()
    group = serializers.CharField(help_text="The name of its group in `groups`.")
    unit = serializers.CharField(allow_blank=True)
    meaning = serializers.CharField()


class CatalogGroupSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()


class MetricsCatalogSerializer(serializers.Serializer):
    """Every metric the trainer reports, and the chart groups, in display order."""

    metrics = CatalogMetricSerializer(many=True)
    groups = CatalogGroupSerializer(many=True)
