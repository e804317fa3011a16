"""Writes of leaderboards: record a run's ``eval`` event, add an external model's result.

Both take the JSON of ``fipo eval`` (``EvalResult.to_dict()`` / the ``eval`` tracking event,
docs/api-contract.md) and validate it before saving: rates are fractions in [0, 1], ``k`` and
``n_problems`` positive, the interval ordered. Reference rows (the paper's figures) are created by
a data migration only and are never written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from django.db import transaction
from pydantic import ValidationError as PydanticValidationError

from fipo_engine.tracking import protocol
from webapp.accounts.models import Team, User
from webapp.accounts.selectors import user_can_write
from webapp.common.errors import NotFound, PermissionDeniedError, ValidationFailed
from webapp.common.parsers import number_problem
from webapp.common.utils import parse_int
from webapp.leaderboards.models import LeaderboardEntry
from webapp.runs.models import Run

MAX_BENCHMARK_LENGTH = 100
# Keys of the eval JSON that have a column; everything else small goes to ``details``.
_COLUMNS = {"benchmark", "step", "pass_at_1", "pass_at_1_ci", "cons_at_k", "pass_at_k", "k", "n_problems",
            "truncation_rate", "temperature", "top_p", "max_new_tokens", "max_tokens", "problems", "settings"}
# EvalScores fields stored in a column of the same name (the interval is split into low and high).
_SCORE_COLUMNS = {"pass_at_1", "cons_at_k", "pass_at_k", "truncation_rate", "k", "n_problems", "step",
                  "temperature", "top_p", "max_tokens"}
_DETAIL_KEYS = ("grader", "n_samples", "response_length_mean", "response_length_p75")


FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


def clean_benchmark(value: Any) -> str:
    """A board name: a benchmark name as given, or a problem file's stem (what ``fipo eval`` names it:
    ``data/aime-2024.parquet`` -> ``aime-2024``), so in-training evals and eval jobs share a board."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("benchmark must be a non-empty name", fields=[{"path": "benchmark", "message": "invalid"}])
    name = value.strip()
    if name.endswith(FILE_SUFFIXES):
        name = PurePath(name).stem
    if not name or len(name) > MAX_BENCHMARK_LENGTH:
        raise ValidationFailed("benchmark must be a name of at most 100 characters",
                               fields=[{"path": "benchmark", "message": "invalid"}])
    return name


def _run_protocol(run: Run) -> dict[str, Any]:
    """Sampling settings of a run's in-training evaluation, from its stored config (filled in when an
    ``eval`` event does not carry them)."""
    cfg = run.config if isinstance(run.config, dict) else {}
    trainer, rollout = cfg.get("trainer", {}), cfg.get("rollout", {})
    return {"temperature": trainer.get("eval_temperature"), "top_p": trainer.get("eval_top_p"),
            "max_tokens": rollout.get("max_new_tokens")}


def clean_eval_result(data: Any) -> dict[str, Any]:
    """Validated entry fields from an eval result / ``eval`` event; raises ``ValidationFailed``.

    The checks are the tracking protocol's ``EvalScores`` (fipo_engine/tracking/protocol.py), so a
    trainer can know what makes an entry; the per-field errors become the API's ``fields``."""
    if not isinstance(data, Mapping):
        raise ValidationFailed("an eval result must be a JSON object", fields=[{"path": "result", "message": "expected an object"}])
    try:
        scores = protocol.EvalScores.model_validate(data)
    except PydanticValidationError as exc:
        errors = protocol.eval_scores_errors(exc)
        raise ValidationFailed("invalid eval result: " + "; ".join(f"{e['path']}: {e['message']}" for e in errors),
                               fields=errors) from None
    fields: dict[str, Any] = scores.model_dump(include=_SCORE_COLUMNS)
    low, high = scores.pass_at_1_ci or (None, None)
    fields["pass_at_1_ci_low"], fields["pass_at_1_ci_high"] = low, high
    details = {key: data[key] for key in _DETAIL_KEYS if key in data}
    problem = number_problem(details)
    if problem is not None:  # stored as JSON: only finite numbers and 64-bit integers fit
        raise ValidationFailed(f"invalid eval result: {problem[0]}: {problem[1]}",
                               fields=[{"path": problem[0], "message": problem[1]}])
    settings = data.get("settings") if isinstance(data.get("settings"), Mapping) else {}
    if settings.get("model"):
        details["model"] = str(settings["model"])[:500]
    fields["details"] = details
    return fields


MAX_DETAIL_PROBLEMS = 100_000


def clean_problem_rows(rows: Any) -> list[dict[str, Any]]:
    """Per-problem rows of a ``fipo eval --json`` result, checked enough to render and compare:
    ``id``, ``n`` and ``correct`` (0 <= correct <= n) are required; other keys are kept."""
    if rows is None:
        return []
    if not isinstance(rows, list) or len(rows) > MAX_DETAIL_PROBLEMS:
        raise ValidationFailed("result.problems must be a list of per-problem results",
                               fields=[{"path": "result.problems", "message": "invalid"}])
    out, seen = [], set()
    for i, row in enumerate(rows):
        n, c = (row.get("n"), row.get("correct")) if isinstance(row, Mapping) else (None, None)
        if (not isinstance(row, Mapping) or row.get("id") is None or isinstance(n, bool) or isinstance(c, bool)
                or not isinstance(n, int) or not isinstance(c, int) or not 0 <= c <= n or n == 0):
            raise ValidationFailed(f"result.problems[{i}] needs an id and integers 0 <= correct <= n, n > 0",
                                   fields=[{"path": f"result.problems.{i}", "message": "invalid"}])
        pid = str(row["id"])
        if pid in seen:
            raise ValidationFailed(f"result.problems[{i}]: problem id {pid!r} appears twice",
                                   fields=[{"path": f"result.problems.{i}.id", "message": "duplicate"}])
        seen.add(pid)
        out.append({**row, "id": pid, "pass_at_1": c / n})
    return out


def _save_detail(entry: LeaderboardEntry, problems: list[dict[str, Any]]) -> None:
    from webapp.leaderboards.models import EntryDetail

    if problems:
        EntryDetail.objects.update_or_create(entry=entry, defaults={"problems": problems})
    else:  # a re-recorded entry without per-problem rows must not keep another evaluation's
        EntryDetail.objects.filter(entry=entry).delete()


def _bench_fields(benchmark: Any) -> dict[str, Any]:
    """The entry's link to the stored benchmark version it was scored on (none: unknown)."""
    if benchmark is None:
        return {"benchmark_ref": None, "benchmark_sha256": ""}
    return {"benchmark_ref": benchmark, "benchmark_sha256": benchmark.sha256}


@transaction.atomic
def entry_record_eval(*, run: Run, data: Mapping[str, Any], benchmark: Any = None,
                      problems: list[dict[str, Any]] | None = None) -> LeaderboardEntry:
    """Record a run's ``eval`` event (from ingest or an eval job) as the run's entry for that step.

    Idempotent per (run, benchmark, step): a re-sent event updates the same row. ``benchmark`` (a
    stored ``Benchmark``) and ``problems`` (per-problem rows) come from eval jobs; an in-training
    event names its benchmark only, so its hash stays unknown.
    """
    name = clean_benchmark(data.get("benchmark") if isinstance(data, Mapping) else None)
    fields = clean_eval_result(data)
    fields.update(_bench_fields(benchmark))
    rows = clean_problem_rows(problems)
    step = fields.pop("step")
    for key, value in _run_protocol(run).items():
        if fields.get(key) is None and value is not None:
            fields[key] = value
    entry = (LeaderboardEntry.objects.select_for_update()
             .filter(run=run, benchmark=name, step=step).order_by("id").first())
    if entry is None:
        entry = LeaderboardEntry.objects.create(run=run, team_id=run.team_id, benchmark=name, step=step,
                                                model_name="", **fields)
    else:
        for key, value in fields.items():
            setattr(entry, key, value)
        entry.save()
    _save_detail(entry, rows)
    return entry


@transaction.atomic
def entry_create_external(*, user: User, team_id: Any, benchmark: Any, model_name: Any,
                          result: Any) -> LeaderboardEntry:
    """Put an external model on a team's board from a ``fipo eval --responses ... --json`` result."""
    if isinstance(team_id, bool) or not isinstance(team_id, int):
        raise ValidationFailed("team must be a team id", fields=[{"path": "team", "message": "required"}])
    if not Team.objects.filter(pk=team_id, memberships__user=user).exists():
        raise NotFound(f"team {team_id} not found")
    if not user_can_write(user=user, team_id=team_id):
        raise PermissionDeniedError("viewers cannot add leaderboard entries")
    name = model_name.strip() if isinstance(model_name, str) else ""
    if not name or len(name) > 200:
        raise ValidationFailed("model_name must be a non-empty name of at most 200 characters",
                               fields=[{"path": "model_name", "message": "invalid"}])
    stored = _stored_benchmark(user=user, ref=benchmark, team_id=team_id)
    bench = stored.name if stored is not None else clean_benchmark(benchmark)
    if isinstance(result, Mapping) and result.get("benchmark") not in (None, bench):
        raise ValidationFailed(f"the result is for benchmark {result.get('benchmark')!r}, not {bench!r}",
                               fields=[{"path": "result.benchmark", "message": "mismatch"}])
    fields = clean_eval_result(result)
    fields.pop("step")
    rows = clean_problem_rows(result.get("problems"))
    if stored is not None:
        _check_against(stored, rows, result)
        fields.update(_bench_fields(stored))
    entry = LeaderboardEntry.objects.create(team_id=team_id, benchmark=bench, model_name=name, **fields)
    _save_detail(entry, rows)
    return entry


def _stored_benchmark(*, user: User, ref: Any, team_id: int) -> Any:
    """The stored benchmark an external result is for (id or name), or None for a name that only
    has a board (the paper's ``aime-2025`` rows): those results stay unversioned."""
    from webapp.leaderboards.benchmarks import benchmark_resolve

    if isinstance(ref, str) and parse_int(ref.strip(), lo=1) is None:
        try:
            return benchmark_resolve(user=user, ref=ref, team_id=team_id, missing="not_found")
        except NotFound:
            return None
    return benchmark_resolve(user=user, ref=ref, team_id=team_id, missing="not_found")


def _check_against(stored: Any, rows: list[dict[str, Any]], result: Mapping[str, Any]) -> None:
    """A result for a stored benchmark must grade its problems (ids known; all of them unless the
    result says it is partial by having fewer), so its number means the same as the board's."""
    known = {str(p["id"]) for p in stored.problems}
    unknown = [r["id"] for r in rows if r["id"] not in known]
    if unknown:
        raise ValidationFailed(f"{len(unknown)} problem id(s) of the result are not in {stored.label}, "
                               f"e.g. {unknown[:3]}", fields=[{"path": "result.problems", "message": "unknown ids"}])
    n = result.get("n_problems")
    if rows and isinstance(n, int) and n != len(rows):
        raise ValidationFailed("result.n_problems does not match result.problems",
                               fields=[{"path": "result.n_problems", "message": "mismatch"}])
