"""Bodies of the tracking API, for the OpenAPI schema only (the views answer with plain dicts built
by the selectors; tests/webapp/test_openapi_conformance.py checks them against these)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from webapp.common.schema import json_schema_component


# ----------------------------------------------------------------------------------- metrics
class MetricKeysSerializer(serializers.Serializer):
    """Without ``keys``: the names of the run's metrics."""

    keys = serializers.ListField(child=serializers.CharField())


class MetricSeriesSerializer(serializers.Serializer):
    """One metric, chart-ready: parallel arrays, at most ``max_points`` long (a bucket's last point,
    and its min and max, when the range held more)."""

    step = serializers.ListField(child=serializers.IntegerField())
    value = serializers.ListField(child=serializers.FloatField())
    min = serializers.ListField(child=serializers.FloatField())
    max = serializers.ListField(child=serializers.FloatField())
    total_points = serializers.IntegerField(help_text="Points in the range before downsampling.")
    downsampled = serializers.BooleanField()


class MetricSeriesSetSerializer(serializers.Serializer):
    """With ``keys``: one series per asked name (an unknown name gives an empty series)."""

    series = serializers.DictField(child=MetricSeriesSerializer())
    stream_pos = serializers.IntegerField(help_text="Stream position read before the series: replay items after it.")


RunMetricsResponse = PolymorphicProxySerializer(
    component_name="RunMetrics", serializers=[MetricKeysSerializer, MetricSeriesSetSerializer],
    resource_type_field_name=None,
)


# ----------------------------------------------------------------------------------- samples
class SampleSummarySerializer(serializers.Serializer):
    """A sample as lists show it (also the ``sample`` stream item's data)."""

    id = serializers.IntegerField()
    step = serializers.IntegerField()
    index = serializers.IntegerField()
    prompt = serializers.CharField(allow_blank=True, help_text="The first 300 characters.")
    reward = serializers.FloatField(allow_null=True)
    correct = serializers.BooleanField(allow_null=True)
    length = serializers.IntegerField(help_text="Response length in tokens.")
    minibatch = serializers.IntegerField(allow_null=True, help_text="0-based mini-batch that trained it (null: not said).")
    num_minibatches = serializers.IntegerField(allow_null=True)


class FipoSettingsSerializer(serializers.Serializer):
    """What explaining a token's FIPO weight needs, derived from the run's config with the engine's
    own functions (``webapp/tracking/fipo.py``)."""

    policy_loss = serializers.CharField()
    decay_rate = serializers.FloatField(help_text="τ, the future-KL half-life in tokens.")
    gamma = serializers.FloatField(help_text="2^(−1/τ).")
    clip_ratio_c = serializers.FloatField()
    ln_c = serializers.FloatField()
    participation_filter = serializers.CharField()
    future_kl_start = serializers.CharField()
    future_kl_window = serializers.IntegerField()
    future_kl_average = serializers.BooleanField()
    weight_low = serializers.FloatField()
    weight_high = serializers.FloatField()
    safety_thresh = serializers.FloatField(allow_null=True, help_text="null: off.")
    safety_band = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)


class SampleListSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.IntegerField(), help_text="Steps that have samples.")
    step = serializers.IntegerField(allow_null=True, help_text="The step shown (null: none).")
    results = SampleSummarySerializer(many=True)
    fipo = FipoSettingsSerializer(allow_null=True, help_text="null when the config has no valid policy-loss section.")


class PositionProfileSerializer(serializers.Serializer):
    """Mean of a per-token channel by token position, over buckets of positions."""

    start = serializers.ListField(child=serializers.IntegerField(), help_text="First position of each bucket.")
    mean = serializers.ListField(child=serializers.FloatField(allow_null=True))
    count = serializers.ListField(child=serializers.IntegerField(), help_text="Values averaged per bucket.")


class SamplePositionsSerializer(serializers.Serializer):
    step = serializers.IntegerField(allow_null=True)
    samples = serializers.IntegerField(help_text="Samples of the step that were read.")
    channels = serializers.DictField(child=PositionProfileSerializer(),
                                     help_text="future_kl and/or influence: those some sample carries.")


class SampleDetailSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField()
    step = serializers.IntegerField()
    index = serializers.IntegerField()
    prompt = serializers.CharField(allow_blank=True)
    response = serializers.CharField(allow_blank=True)
    reward = serializers.FloatField(allow_null=True)
    correct = serializers.BooleanField(allow_null=True)
    length = serializers.IntegerField()
    minibatch = serializers.IntegerField(allow_null=True)
    num_minibatches = serializers.IntegerField(allow_null=True)
    tokens = serializers.ListField(child=serializers.CharField(allow_blank=True))
    channels = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Per-token values by channel name (those the trainer sent); NaN as null.",
    )


# ------------------------------------------------------------------------- protocol catalogs
class TokenChannelSerializer(serializers.Serializer):
    """One per-token channel (``fipo_engine.token_channels``): what it means and how it is coloured."""

    name = serializers.CharField(help_text="The key a sample event carries it under.")
    label = serializers.CharField()
    meaning = serializers.CharField()
    unit = serializers.CharField(allow_blank=True)
    scale = serializers.ChoiceField(choices=["diverging", "sequential"])
    neutral = serializers.FloatField(help_text="The value drawn white (the colour scale's centre).")
    palette = serializers.CharField(help_text="An 11-class ColorBrewer palette name, e.g. RdBu.")
    colour = serializers.BooleanField(help_text="Offered as a colouring on the samples page.")
    position = serializers.BooleanField(help_text="Summarised by token position (samples/positions/).")
    loss_output = serializers.CharField(allow_null=True, help_text="The policy loss output that holds it, if any.")


class TokenChannelCatalogSerializer(serializers.Serializer):
    channels = TokenChannelSerializer(many=True, help_text="In display order.")


#: A JSON Schema document served as data (``/config/schema``, ``/tracking/schema.json``).
JSON_SCHEMA_DOCUMENT = {"type": "object", "description": "A JSON Schema (draft 2020-12) document."}


# ------------------------------------------------------------------------------------ ingest
class RejectedEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField(allow_null=True, help_text="null when the event had no valid seq.")
    reason = serializers.CharField()


class IngestResultSerializer(serializers.Serializer):
    """The answer to an event batch: what the control plane now holds."""

    acked_seq = serializers.IntegerField(help_text="Highest seq held with no gap below it.")
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectedEventSerializer(many=True)


def _event_list_schema(ref_template: str) -> dict[str, Any]:
    from fipo_engine.tracking.protocol import EVENT_LIST_ADAPTER

    schema = EVENT_LIST_ADAPTER.json_schema(ref_template=ref_template)
    for model in schema.get("$defs", {}).values():
        for prop in model.get("properties", {}).values():
            # A field that may be left out but not sent as null (``EvalEvent.step``) gets pydantic's
            # ``"default": null`` beside a type without null: a default its own schema refuses, which
            # OpenAPI validators reject. Leaving the default out says the same: optional.
            if "default" in prop and prop["default"] is None and "type" in prop and "null" not in prop["type"]:
                del prop["default"]
    return schema


#: The ingest body: a list of events, generated from the protocol's pydantic models (the ones the
#: trainer builds events with and the ingest view parses them with), each event type a component.
TrackingEventList = json_schema_component("TrackingEventList", _event_list_schema)
