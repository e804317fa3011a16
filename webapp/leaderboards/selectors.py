"""Reads of leaderboards, always scoped: a user sees the entries of their own teams plus the global
rows (``team`` null: the paper's reference figures), never another team's entries.

* ``scope="team"``: the user's teams' entries (optionally one team) + global rows.
* ``scope="global"``: the global rows only (the board every team shares).
A run is represented by its best checkpoint (highest Pass@1; ties go to the later step) unless
``all_checkpoints``.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from webapp.accounts.models import User
from webapp.accounts.selectors import user_team_ids
from webapp.common.errors import NotFound, ValidationFailed
from webapp.leaderboards.models import LeaderboardEntry

SCOPES = ("team", "global")


def _visible(*, user: User, scope: str, team_id: int | None) -> QuerySet[LeaderboardEntry]:
    if scope not in SCOPES:
        raise ValidationFailed(f"scope must be one of {', '.join(SCOPES)}", fields=[{"path": "scope", "message": "invalid"}])
    global_rows = Q(team__isnull=True)
    if scope == "global":
        return LeaderboardEntry.objects.filter(global_rows)
    teams = user_team_ids(user=user)
    if team_id is not None:
        if team_id not in teams:
            raise NotFound(f"team {team_id} not found")
        teams = [team_id]
    return LeaderboardEntry.objects.filter(global_rows | Q(team_id__in=teams))


def best_per_run(entries: list[LeaderboardEntry]) -> list[LeaderboardEntry]:
    """Keep one entry per run: the best checkpoint (max Pass@1, then the later step, then the newer row)."""
    best: dict[int, LeaderboardEntry] = {}
    others: list[LeaderboardEntry] = []
    for entry in entries:
        if entry.run_id is None:
            others.append(entry)
            continue
        current = best.get(entry.run_id)
        key = (entry.pass_at_1, entry.step if entry.step is not None else -1, entry.pk)
        if current is None or key > (current.pass_at_1, current.step if current.step is not None else -1, current.pk):
            best[entry.run_id] = entry
    return others + list(best.values())


def leaderboard(*, user: User, benchmark: str, scope: str = "team", team_id: int | None = None,
                all_checkpoints: bool = False) -> list[LeaderboardEntry]:
    """The ranked entries of one benchmark that this user may see (best Pass@1 first)."""
    rows = list(_visible(user=user, scope=scope, team_id=team_id).filter(benchmark=benchmark)
                .select_related("team", "run"))
    if not all_checkpoints:
        rows = best_per_run(rows)
    return sorted(rows, key=lambda e: (-e.pass_at_1, e.is_reference, e.pk))


def benchmark_list(*, user: User) -> list[dict[str, object]]:
    """Benchmarks with at least one visible entry, and how many entries each has."""
    rows = _visible(user=user, scope="team", team_id=None).values_list("benchmark", flat=True)
    counts: dict[str, int] = {}
    for name in rows:
        counts[name] = counts.get(name, 0) + 1
    return [{"benchmark": name, "entries": n} for name, n in sorted(counts.items())]
