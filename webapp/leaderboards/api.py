"""Leaderboards API (docs/api-contract.md):

* ``GET /api/v1/leaderboards/`` -> ``[{"benchmark", "entries"}]`` visible to the user.
* ``GET /api/v1/leaderboards/<benchmark>/?scope=team|global&team=<id>&all=1`` ->
  ``{"benchmark", "scope", "all", "entries": [...]}`` ranked by Pass@1.
* ``POST /api/v1/leaderboards/<benchmark>/entries/`` ``{"team", "model_name", "result"}``: an external
  model's ``fipo eval --responses ... --json`` output on the team's board.
* ``POST /api/v1/leaderboards/evaluate/`` ``{"run", "benchmark", "step"?, "k"?, ...}``: queue an eval
  job of a run's checkpoint (202); ``benchmark`` is a name or a file path on the worker, and the
  entry lands on the board named by ``fipo eval`` (a file's stem).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.errors import ValidationFailed
from webapp.common.utils import parse_int
from webapp.leaderboards import selectors, services
from webapp.leaderboards.models import LeaderboardEntry


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def entry_data(entry: LeaderboardEntry, rank: int | None = None) -> dict[str, Any]:
    """One entry as the API shows it."""
    kind = "reference" if entry.is_reference else ("run" if entry.run_id else "external")
    ci = None if entry.pass_at_1_ci_low is None else [entry.pass_at_1_ci_low, entry.pass_at_1_ci_high]
    return {
        "id": entry.pk,
        "rank": rank,
        "benchmark": entry.benchmark,
        "kind": kind,
        "name": entry.model_name or (entry.run.name if entry.run_id else ""),
        "run": entry.run_id,
        "step": entry.step,
        "team": entry.team_id,
        "team_name": entry.team.name if entry.team_id else None,
        "is_reference": entry.is_reference,
        "source": entry.source,
        "pass_at_1": entry.pass_at_1,
        "pass_at_1_ci": ci,
        "cons_at_k": entry.cons_at_k,
        "pass_at_k": entry.pass_at_k,
        "k": entry.k,
        "temperature": entry.temperature,
        "top_p": entry.top_p,
        "max_tokens": entry.max_tokens,
        "truncation_rate": entry.truncation_rate,
        "n_problems": entry.n_problems,
        "details": entry.details,
        "created_at": _iso(entry.created_at),
    }


def _int_param(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    number = parse_int(value, lo=1)
    if number is None:
        raise ValidationFailed(f"{name} must be an integer", fields=[{"path": name, "message": "invalid"}])
    return number


class BenchmarkListApi(APIView):
    @extend_schema(operation_id="leaderboards_list", responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response(selectors.benchmark_list(user=request.user))


class LeaderboardApi(APIView):
    @extend_schema(
        operation_id="leaderboard_retrieve",
        parameters=[
            OpenApiParameter("scope", str, enum=list(selectors.SCOPES), description="team (default) or global"),
            OpenApiParameter("team", int, description="only this one of your teams (scope=team)"),
            OpenApiParameter("all", bool, description="every checkpoint instead of each run's best"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, benchmark: str) -> Response:
        scope = request.query_params.get("scope", "team")
        all_checkpoints = request.query_params.get("all") in {"1", "true", "yes"}
        entries = selectors.leaderboard(user=request.user, benchmark=benchmark, scope=scope,
                                        team_id=_int_param(request.query_params.get("team"), "team"),
                                        all_checkpoints=all_checkpoints)
        return Response({"benchmark": benchmark, "scope": scope, "all": all_checkpoints,
                         "entries": [entry_data(e, rank) for rank, e in enumerate(entries, start=1)]})


class ExternalEntryCreateApi(APIView):
    @extend_schema(operation_id="leaderboard_entry_create", request=OpenApiTypes.OBJECT,
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request: Request, benchmark: str) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        entry = services.entry_create_external(user=request.user, team_id=body.get("team"), benchmark=benchmark,
                                               model_name=body.get("model_name"), result=body.get("result"))
        return Response(entry_data(entry), status=201)


class EvaluateApi(APIView):
    @extend_schema(operation_id="leaderboard_evaluate", request=OpenApiTypes.OBJECT,
                   responses={202: OpenApiTypes.OBJECT})
    def post(self, request: Request) -> Response:
        from webapp.leaderboards.jobs import eval_job_queue

        body = request.data if isinstance(request.data, dict) else {}
        job = eval_job_queue(user=request.user, run_id=body.get("run"), benchmark=body.get("benchmark"),
                             options=body)
        return Response(job, status=202)
