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


# ------------------------------------------------------------------------------ versions, entries
def board_entries(*, user: User, name: str, sha256: str | None, scope: str = "team", team_id: int | None = None,
                  all_checkpoints: bool = False, run_id: int | None = None) -> list[LeaderboardEntry]:
    """``leaderboard`` restricted to one benchmark version: entries scored on that hash, plus the
    entries whose hash is unknown (the paper's rows, in-training evals that name a file)."""
    rows = list(_visible(user=user, scope=scope, team_id=team_id).filter(benchmark=name)
                .select_related("team", "run", "benchmark_ref"))
    if sha256 is not None:
        rows = [e for e in rows if e.benchmark_sha256 in ("", sha256)]
    if run_id is not None:
        rows = [e for e in rows if e.run_id == run_id]
    if not all_checkpoints:
        rows = best_per_run(rows)
    return sorted(rows, key=lambda e: (-e.pass_at_1, e.is_reference, e.pk))


def entry_get(*, user: User, entry_id: int) -> LeaderboardEntry:
    """One entry the user may see (own teams' or global); another team's is NotFound."""
    entry = (_visible(user=user, scope="team", team_id=None).filter(pk=entry_id)
             .select_related("team", "run", "benchmark_ref").first())
    if entry is None:
        raise NotFound(f"entry {entry_id} not found")
    return entry


def entry_problems(entry: LeaderboardEntry) -> list[dict]:
    from webapp.leaderboards.models import EntryDetail

    detail = EntryDetail.objects.filter(entry=entry).values_list("problems", flat=True).first()
    return detail or []


def per_problem_accuracy(problems: list[dict]) -> dict[str, float]:
    return {str(p["id"]): p["correct"] / p["n"] for p in problems if p.get("n")}


def _accuracy(entry: LeaderboardEntry, cache: dict[int, dict[str, float]] | None) -> dict[str, float]:
    if cache is None:
        return per_problem_accuracy(entry_problems(entry))
    if entry.pk not in cache:
        cache[entry.pk] = per_problem_accuracy(entry_problems(entry))
    return cache[entry.pk]


def compare_entries(a: LeaderboardEntry, b: LeaderboardEntry, *, seed: int = 0,
                    cache: dict[int, dict[str, float]] | None = None) -> dict:
    """B vs A on the problems both graded: wins/losses/ties of B, the Pass@1 difference B - A
    (fractions) and its paired bootstrap 95% CI over problems. ``ValidationFailed`` when they were
    not scored on one benchmark version or lack per-problem results."""
    from fipo_engine.eval.stats import paired_bootstrap_diff

    if not a.benchmark_sha256 or a.benchmark_sha256 != b.benchmark_sha256:
        raise ValidationFailed("the two entries were not scored on the same benchmark version "
                               f"({_version_label(a)} vs {_version_label(b)})",
                               fields=[{"path": "b", "message": "different benchmark version"}])
    pa, pb = _accuracy(a, cache), _accuracy(b, cache)
    common = [pid for pid in pa if pid in pb]
    if not common:
        raise ValidationFailed("the two entries have no per-problem results in common",
                               fields=[{"path": "b", "message": "no common problems"}])
    xa, xb = [pa[p] for p in common], [pb[p] for p in common]
    diff, (lo, hi) = paired_bootstrap_diff(xa, xb, seed=seed)
    wins = sum(y > x for x, y in zip(xa, xb, strict=True))
    losses = sum(y < x for x, y in zip(xa, xb, strict=True))
    return {"diff": diff, "ci": [lo, hi], "wins": wins, "losses": losses, "ties": len(common) - wins - losses,
            "n_problems": len(common), "sentence": compare_sentence(diff, lo, hi, len(common))}


def compare_sentence(diff: float, lo: float, hi: float, n: int) -> str:
    """"B is ahead by 3.1 points, 95% CI -2.4 to 8.7: not distinguishable on 30 problems"."""
    pts = abs(100 * diff)
    lead = "B and A are level" if pts < 0.05 else f"B is {'ahead' if diff > 0 else 'behind'} by {pts:.1f} points"
    verdict = "not distinguishable" if lo <= 0 <= hi else "a real difference"
    return f"{lead}, 95% CI {100 * lo:.1f} to {100 * hi:.1f}: {verdict} on {n} problems".replace("-", "−")


def _version_label(entry: LeaderboardEntry) -> str:
    if entry.benchmark_ref_id and entry.benchmark_ref is not None:
        return entry.benchmark_ref.label
    return f"{entry.benchmark} (version unknown)" if not entry.benchmark_sha256 else entry.benchmark


def versus_leader(entries: list[LeaderboardEntry]) -> dict[int, dict]:
    """Per entry, how it stands against the board's leader (the best non-reference entry): the paired
    comparison when both have per-problem results on one version, else whether the two CIs overlap.
    ``indistinguishable``: the leader's lead is within the noise (the row is marked on the board)."""
    leader = next((e for e in entries if not e.is_reference), None)
    out: dict[int, dict] = {}
    cache: dict[int, dict[str, float]] = {}
    if leader is None:
        return out
    for entry in entries:
        if entry.is_reference or entry.pk == leader.pk:
            continue
        info: dict = {"leader": leader.pk, "method": None, "indistinguishable": None}
        try:
            cmp = compare_entries(leader, entry, cache=cache)
            info.update(method="paired", diff=cmp["diff"], ci=cmp["ci"],
                        indistinguishable=cmp["ci"][0] <= 0 <= cmp["ci"][1])
        except ValidationFailed:
            if None not in (entry.pass_at_1_ci_high, leader.pass_at_1_ci_low):
                info.update(method="ci_overlap", indistinguishable=entry.pass_at_1_ci_high >= leader.pass_at_1_ci_low)
        out[entry.pk] = info
    return out
