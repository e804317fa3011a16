"""Bodies of the leaderboards API, for the OpenAPI schema only (the views answer with plain dicts
built by ``entry_data``/``benchmark_data``/``job_data``; tests/webapp/test_openapi_conformance.py
checks them against these)."""

from __future__ import annotations

from rest_framework import serializers

from webapp.common.schema import enum_field
from webapp.leaderboards.models import EvalJobStatus

EvalJobStatusField = enum_field("EvalJobStatus", EvalJobStatus.values, "An eval job's state.")
EntryKindField = enum_field("EntryKind", ["run", "external", "reference"],
                            "A run's checkpoint, an external model's result, or a figure reported in a paper.")
ComparisonMethodField = enum_field("ComparisonMethod", ["paired", "ci_overlap"],
                                   "paired: a paired bootstrap over common problems; ci_overlap: the two CIs overlap.")


def _ci(help_text: str, *, allow_null: bool = True, required: bool = True) -> serializers.ListField:
    """A confidence interval ``[low, high]``."""
    return serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2, allow_null=allow_null,
                                 required=required, help_text=help_text)


# -------------------------------------------------------------------------------- benchmarks
class BenchmarkSerializer(serializers.Serializer):
    """A stored benchmark version (a built-in one has no team)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    label = serializers.CharField(help_text='For display, e.g. "aime24 v2".')
    sha256 = serializers.CharField(help_text="SHA-256 of the canonical problem list.")
    n_problems = serializers.IntegerField()
    grader = serializers.CharField()
    team = serializers.IntegerField(allow_null=True)
    team_name = serializers.CharField(allow_null=True)
    builtin = serializers.BooleanField()
    layout = serializers.CharField(allow_blank=True)
    source_name = serializers.CharField(allow_blank=True, help_text="The uploaded file's name.")
    created_at = serializers.DateTimeField()


class BenchmarkProblemSerializer(serializers.Serializer):
    id = serializers.JSONField(help_text="The problem's id in its file.")
    prompt = serializers.CharField(allow_blank=True)
    answer = serializers.CharField(allow_blank=True)


class BenchmarkDetailSerializer(BenchmarkSerializer):
    problems = BenchmarkProblemSerializer(many=True, help_text="In benchmark order.")


class BenchmarkUploadRequestSerializer(serializers.Serializer):
    """``multipart/form-data``: a JSONL or Parquet file of problems."""

    file = serializers.FileField()
    name = serializers.CharField()
    team = serializers.IntegerField()
    layout = serializers.CharField(required=False, help_text="How to read the file (default: detected).")
    grader = serializers.CharField(required=False, help_text="How answers are graded (default: math).")


class BenchmarkVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    label = serializers.CharField()
    sha256 = serializers.CharField()


# ----------------------------------------------------------------------------------- entries
class EntrySerializer(serializers.Serializer):
    """One row of a leaderboard: a run's checkpoint, an external model, or a paper's figure."""

    id = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True, help_text="Place on the board (null outside a board).")
    benchmark = serializers.CharField()
    kind = EntryKindField()
    name = serializers.CharField(allow_blank=True)
    run = serializers.IntegerField(allow_null=True)
    step = serializers.IntegerField(allow_null=True, help_text="Checkpoint step (null: the final model).")
    team = serializers.IntegerField(allow_null=True)
    team_name = serializers.CharField(allow_null=True)
    is_reference = serializers.BooleanField()
    source = serializers.CharField(allow_blank=True, help_text="Where a reference figure comes from.")
    pass_at_1 = serializers.FloatField(help_text="avg@k: mean accuracy over k samples per problem.")
    pass_at_1_ci = _ci("95% CI [low, high] of pass_at_1.")
    cons_at_k = serializers.FloatField(allow_null=True)
    pass_at_k = serializers.FloatField(allow_null=True)
    k = serializers.IntegerField(allow_null=True)
    temperature = serializers.FloatField(allow_null=True)
    top_p = serializers.FloatField(allow_null=True)
    max_tokens = serializers.IntegerField(allow_null=True)
    truncation_rate = serializers.FloatField(allow_null=True)
    n_problems = serializers.IntegerField(allow_null=True)
    details = serializers.DictField(help_text="The rest of the eval result (grader, lengths).")
    created_at = serializers.DateTimeField()
    benchmark_id = serializers.IntegerField(allow_null=True, help_text="The stored benchmark version, if any.")
    benchmark_version = serializers.IntegerField(allow_null=True)
    benchmark_sha256 = serializers.CharField(allow_null=True)


class VersusLeaderSerializer(serializers.Serializer):
    """How an entry stands against the board's leader."""

    leader = serializers.IntegerField(help_text="The leader's entry id.")
    method = ComparisonMethodField(allow_null=True, help_text="null: cannot tell (neither way applies).")
    indistinguishable = serializers.BooleanField(allow_null=True, help_text="The leader's lead is within the noise.")
    diff = serializers.FloatField(required=False, help_text="paired only: this entry's Pass@1 minus the leader's.")
    ci = _ci("paired only: 95% CI of diff.", allow_null=False, required=False)


class BoardEntrySerializer(EntrySerializer):
    vs_leader = VersusLeaderSerializer(allow_null=True, help_text="null for the leader and for reference rows.")


class LeaderboardSerializer(serializers.Serializer):
    benchmark = serializers.CharField()
    scope = serializers.CharField()
    all = serializers.BooleanField(help_text="Every checkpoint, not each run's best.")
    benchmark_info = BenchmarkSerializer(allow_null=True, help_text="null for a name with no stored benchmark.")
    versions = BenchmarkVersionSerializer(many=True)
    entries = BoardEntrySerializer(many=True, help_text="Best Pass@1 first.")


class BoardSummarySerializer(serializers.Serializer):
    benchmark = serializers.CharField()
    entries = serializers.IntegerField(help_text="Entries visible to the caller.")


class ProblemResultSerializer(serializers.Serializer):
    """One problem's result (other keys of the submitted row are kept)."""

    id = serializers.CharField()
    n = serializers.IntegerField(help_text="Samples graded.")
    correct = serializers.IntegerField()
    pass_at_1 = serializers.FloatField()
    prompt = serializers.CharField(allow_null=True, help_text="From the stored benchmark (null: unknown).")


class EntryDetailSerializer(EntrySerializer):
    benchmark_info = BenchmarkSerializer(allow_null=True)
    problems = ProblemResultSerializer(many=True)


class CompareSerializer(serializers.Serializer):
    """B − A on the problems both graded, with a paired bootstrap CI."""

    diff = serializers.FloatField(help_text="Pass@1 of B minus A (fractions).")
    ci = _ci("95% CI of diff.", allow_null=False)
    wins = serializers.IntegerField(help_text="Problems where B beats A.")
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    n_problems = serializers.IntegerField()
    sentence = serializers.CharField()
    a = EntrySerializer()
    b = EntrySerializer()


class EvalResultSerializer(serializers.Serializer):
    """``fipo eval --json`` output (other keys are ignored)."""

    pass_at_1 = serializers.FloatField(min_value=0, max_value=1)
    pass_at_1_ci = _ci("[low, high] within [0, 1].", required=False)
    cons_at_k = serializers.FloatField(required=False, allow_null=True)
    pass_at_k = serializers.FloatField(required=False, allow_null=True)
    truncation_rate = serializers.FloatField(required=False, allow_null=True)
    k = serializers.IntegerField(required=False, allow_null=True)
    n_problems = serializers.IntegerField(required=False, allow_null=True)
    benchmark = serializers.CharField(required=False, help_text="Must match the board's benchmark when given.")
    problems = serializers.ListField(child=serializers.DictField(), required=False,
                                     help_text="Per-problem rows: id, n, correct (0 <= correct <= n).")


class EntryCreateRequestSerializer(serializers.Serializer):
    team = serializers.IntegerField()
    model_name = serializers.CharField(max_length=200)
    result = EvalResultSerializer()


# ---------------------------------------------------------------------------------- eval jobs
class EvaluateRequestSerializer(serializers.Serializer):
    """Queue an eval job of a run's checkpoint. Options left out take the run's defaults."""

    run = serializers.IntegerField()
    benchmark = serializers.JSONField(help_text="A stored benchmark's id, or its name.")
    step = serializers.IntegerField(required=False, allow_null=True, help_text="Checkpoint step (default: newest).")
    k = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    temperature = serializers.FloatField(required=False)
    top_p = serializers.FloatField(required=False, max_value=1)
    max_new_tokens = serializers.IntegerField(required=False, min_value=1)
    limit = serializers.IntegerField(required=False, min_value=1, help_text="Only the first N problems.")
    seed = serializers.IntegerField(required=False)


class EvalJobSerializer(serializers.Serializer):
    """An eval job and its progress (``job``…``error`` are also the ``eval_job`` stream item)."""

    id = serializers.IntegerField()
    job = serializers.IntegerField(help_text="The same as id.")
    run = serializers.IntegerField()
    status = EvalJobStatusField()
    benchmark = serializers.IntegerField(help_text="The stored benchmark's id.")
    benchmark_label = serializers.CharField()
    step = serializers.IntegerField(allow_null=True)
    done = serializers.IntegerField(help_text="Problems graded so far.")
    total = serializers.IntegerField()
    pass_at_1 = serializers.FloatField(allow_null=True, help_text="Running Pass@1 over the problems done.")
    entry = serializers.IntegerField(allow_null=True, help_text="The leaderboard entry once it succeeded.")
    error = serializers.CharField(allow_blank=True)
    options = serializers.DictField(help_text="The options given when it was queued.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class EvalDefaultsSerializer(serializers.Serializer):
    """What a job of this run gets unless the request says otherwise."""

    k = serializers.IntegerField(required=False)
    max_new_tokens = serializers.IntegerField(required=False)
    temperature = serializers.FloatField(required=False)
    top_p = serializers.FloatField(required=False)


class EvalJobListSerializer(serializers.Serializer):
    defaults = EvalDefaultsSerializer()
    results = EvalJobSerializer(many=True)
