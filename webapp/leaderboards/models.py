"""One row per evaluated model on one benchmark: a run's checkpoint, an external model, or a paper figure.

Visibility (``selectors.access`` rules): a row with a team belongs to that team only; a row without a
team is on the global board (the paper's reported figures, ``is_reference``), visible to everyone.
Rates are fractions in [0, 1]; the API and the pages print percentages.
"""

from __future__ import annotations

from django.db import models


class LeaderboardEntry(models.Model):
    benchmark = models.CharField(max_length=100)
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
