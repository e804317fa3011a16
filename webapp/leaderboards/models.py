"""One row per evaluated model on one benchmark: a run's checkpoint, an external model, or a paper figure.

Visibility (``selectors.access`` rules): a row with a team belongs to that team only; a row without a
team is on the global board (the paper's reported figures, ``is_reference``), visible to everyone.
Rates are fractions in [0, 1]; the API and the pages print percentages.
"""

from __future__ import annotations

from django.db import models


class Benchmark(models.Model):
    """A problem set, stored as parsed at upload: entries scored on it keep its ``sha256``.

    ``team`` null: a built-in (``champ``, ``champ-all``, the CPU task families), visible to all.
    One name may have several versions in a team (a different file under a used name is version
    n+1); the same content (same ``sha256``) is the same benchmark whatever its file name.
    """

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, null=True, blank=True,
                             related_name="benchmarks")
    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the canonical problem list (id, prompt, answer).")
    n_problems = models.PositiveIntegerField()
    grader = models.CharField(max_length=32, default="math")
    layout = models.CharField(max_length=32, blank=True, default="", help_text="File layout it was read with.")
    source_name = models.CharField(max_length=200, blank=True, default="", help_text="The uploaded file's name.")
    problems = models.JSONField(default=list, help_text="[{id, prompt, answer}] in benchmark order.")
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name", "version", "id")
        constraints = (
            models.UniqueConstraint(fields=("team", "name", "version"), name="bench_team_name_version_unique"),
            models.UniqueConstraint(fields=("name", "version"), condition=models.Q(team__isnull=True),
                                    name="bench_builtin_name_version_unique"),
            models.UniqueConstraint(fields=("team", "sha256"), name="bench_team_sha_unique"),
        )

    @property
    def label(self) -> str:
        """``aime-2024`` for a first version, ``aime-2024 (v2)`` after."""
        return self.name if self.version == 1 else f"{self.name} (v{self.version})"

    def __str__(self) -> str:
        return self.label


class EvalJobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EvalJob(models.Model):
    """One evaluation of a run's checkpoint on a stored benchmark, started from the browser or API.

    Progress (``done`` of ``total`` problems, the running Pass@1) is written by the Celery task while
    ``fipo eval`` samples; ``cancel_requested`` is how the web process asks the task to stop it.
    """

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="eval_jobs")
    benchmark = models.ForeignKey(Benchmark, on_delete=models.PROTECT, related_name="eval_jobs")
    step = models.IntegerField(null=True, blank=True)
    checkpoint_uri = models.TextField()
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=EvalJobStatus.choices, default=EvalJobStatus.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    pass_at_1 = models.FloatField(null=True, blank=True, help_text="Running Pass@1 over the problems done.")
    error = models.TextField(blank=True, default="")
    handle = models.TextField(blank=True, default="", help_text="The launcher's job handle.")
    cancel_requested = models.BooleanField(default=False)
    entry = models.ForeignKey("LeaderboardEntry", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    created_by = models.ForeignKey("accounts.User", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)

    @property
    def is_final(self) -> bool:
        return self.status in {EvalJobStatus.SUCCEEDED, EvalJobStatus.FAILED, EvalJobStatus.CANCELLED}


class LeaderboardEntry(models.Model):
    benchmark = models.CharField(max_length=100)
    benchmark_ref = models.ForeignKey(Benchmark, on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="entries", help_text="The stored benchmark version scored.")
    benchmark_sha256 = models.CharField(max_length=64, blank=True, default="",
                                        help_text="Hash of the problems it was scored on ('' when unknown).")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, null=True, blank=True,
                             related_name="leaderboard_entries")
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, null=True, blank=True,
                            related_name="leaderboard_entries")
    step = models.IntegerField(null=True, blank=True, help_text="Checkpoint step of the run (null: final model).")
    model_name = models.CharField(max_length=200, blank=True, default="",
                                  help_text="External model name, or the paper's model for reference rows.")
    is_reference = models.BooleanField(default=False, help_text="A figure reported in a paper (read-only).")
    source = models.CharField(max_length=300, blank=True, default="", help_text="Where a reference figure comes from.")

    pass_at_1 = models.FloatField(help_text="avg@k: mean accuracy over k samples per problem.")
    pass_at_1_ci_low = models.FloatField(null=True, blank=True)
    pass_at_1_ci_high = models.FloatField(null=True, blank=True)
    cons_at_k = models.FloatField(null=True, blank=True)
    pass_at_k = models.FloatField(null=True, blank=True)
    k = models.PositiveIntegerField(null=True, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    truncation_rate = models.FloatField(null=True, blank=True)
    n_problems = models.PositiveIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="The rest of the eval result (grader, lengths).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("benchmark", "-pass_at_1", "id")
        indexes = (models.Index(fields=("benchmark", "team"), name="lb_benchmark_team_idx"),)
        constraints = (
            models.CheckConstraint(condition=models.Q(run__isnull=True) | models.Q(team__isnull=False),
                                   name="lb_run_entries_have_a_team"),
            models.CheckConstraint(condition=models.Q(is_reference=False) | models.Q(team__isnull=True),
                                   name="lb_references_are_global"),
            models.CheckConstraint(condition=models.Q(pass_at_1__gte=0.0) & models.Q(pass_at_1__lte=1.0),
                                   name="lb_pass_at_1_is_a_fraction"),
            # one row per (run, benchmark, checkpoint step): re-sent eval events update it
            models.UniqueConstraint(fields=("run", "benchmark", "step"),
                                    condition=models.Q(run__isnull=False, step__isnull=False),
                                    name="lb_run_benchmark_step_unique"),
        )

    def __str__(self) -> str:
        who = self.model_name or (f"run {self.run_id}" + (f" step {self.step}" if self.step is not None else ""))
        return f"{self.benchmark}: {who} {100 * self.pass_at_1:.1f}%"


class EntryDetail(models.Model):
    """Per-problem results of an entry (kept apart so boards never load them): for each problem
    ``{id, gold, n, correct, pass_at_1, cons_correct, majority, answers, correct_mask}`` and, when
    known, ``responses``, ``lengths``, ``truncated``."""

    entry = models.OneToOneField(LeaderboardEntry, on_delete=models.CASCADE, primary_key=True,
                                 related_name="detail")
    problems = models.JSONField(default=list)
