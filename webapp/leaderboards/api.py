"""Leaderboards API (docs/api-contract.md):

* ``GET /api/v1/leaderboards/`` -> ``[{"benchmark", "entries"}]`` visible to the user.
* ``GET /api/v1/leaderboards/<benchmark>/?scope=team|global&team=<id>&all=1`` ->
  ``{"benchmark", "scope", "all", "entries": [...]}`` ranked by Pass@1.
* ``POST /api/v1/leaderboards/<benchmark>/entries/`` ``{"team", "model_name", "result"}``: an external
  model's ``fipo eval --responses ... --json`` output on the team's board.
* ``POST /api/v1/leaderboards/evaluate/`` ``{"run", "benchmark": <id or name>, "step"?, "k"?, ...}``:
  queue an eval job of a run's checkpoint -> 202 ``{"job": <id>}``; a file path is a 400.
* ``GET /api/v1/eval-jobs/?run=<id>``, ``GET /api/v1/eval-jobs/<id>/``, ``POST .../<id>/cancel``.
* ``GET|POST /api/v1/benchmarks/`` (multipart ``file``, ``name``, ``team``), ``GET /api/v1/benchmarks/<id>/``.
* ``GET /api/v1/leaderboards/entries/<id>/``: an entry with its per-problem results.
* ``GET /api/v1/leaderboards/compare/?a=<entry>&b=<entry>``: B - A with a paired bootstrap CI.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.errors import NotFound, ValidationFailed
from webapp.common.schema import error_responses
from webapp.common.utils import iso, parse_int
from webapp.leaderboards import benchmarks, jobs, schemas, selectors, services
from webapp.leaderboards.models import Benchmark, EvalJob, LeaderboardEntry


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
        "created_at": iso(entry.created_at),
        "benchmark_id": entry.benchmark_ref_id,
        "benchmark_version": entry.benchmark_ref.version if entry.benchmark_ref_id and entry.benchmark_ref else None,
        "benchmark_sha256": entry.benchmark_sha256 or None,
    }


def benchmark_data(bench: Benchmark, *, problems: bool = False) -> dict[str, Any]:
    """A benchmark as the API shows it (``problems`` only on the detail route)."""
    data: dict[str, Any] = {
        "id": bench.pk, "name": bench.name, "version": bench.version, "label": bench.label, "sha256": bench.sha256,
        "n_problems": bench.n_problems, "grader": bench.grader, "team": bench.team_id,
        "team_name": bench.team.name if bench.team_id else None, "builtin": bench.team_id is None,
        "layout": bench.layout, "source_name": bench.source_name, "created_at": iso(bench.created_at),
    }
    if problems:
        data["problems"] = bench.problems
    return data


def job_data(job: EvalJob) -> dict[str, Any]:
    return {**jobs.job_progress(job), "id": job.pk, "run": job.run_id, "options": job.options,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at)}


def _int_param(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    number = parse_int(value, lo=1)
    if number is None:
        raise ValidationFailed(f"{name} must be an integer", fields=[{"path": name, "message": "invalid"}])
    return number


class BenchmarkListApi(APIView):
    @extend_schema(operation_id="leaderboards_list",
                   responses={200: schemas.BoardSummarySerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(selectors.benchmark_list(user=request.user))


def _board_version(request: Request, benchmark: str) -> Benchmark | None:
    """The stored benchmark version a board shows: by id, or by name (``?version=``, else the
    latest); None for a name that only has entries (the paper's boards, in-training file stems)."""
    version = _int_param(request.query_params.get("version"), "version")
    team = _int_param(request.query_params.get("team"), "team")
    try:
        return benchmarks.benchmark_resolve(user=request.user, ref=benchmark, team_id=team, missing="not_found",
                                            version=version)
    except (NotFound, ValidationFailed):
        if parse_int(benchmark, lo=1) is not None or version is not None:
            raise
        return None


class LeaderboardApi(APIView):
    @extend_schema(
        operation_id="leaderboard_retrieve",
        parameters=[
            OpenApiParameter("scope", str, enum=list(selectors.SCOPES), description="team (default) or global"),
            OpenApiParameter("team", int, description="only this one of your teams (scope=team)"),
            OpenApiParameter("all", bool, description="every checkpoint instead of each run's best"),
            OpenApiParameter("version", int, description="benchmark version (default: the latest)"),
            OpenApiParameter("run", int, description="only this run's entries"),
        ],
        responses={200: schemas.LeaderboardSerializer, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, benchmark: str) -> Response:
        scope = request.query_params.get("scope", "team")
        all_checkpoints = request.query_params.get("all") in {"1", "true", "yes"}
        stored = _board_version(request, benchmark)
        name = stored.name if stored is not None else benchmark
        entries = selectors.board_entries(user=request.user, name=name, sha256=stored.sha256 if stored else None,
                                          scope=scope, team_id=_int_param(request.query_params.get("team"), "team"),
                                          all_checkpoints=all_checkpoints,
                                          run_id=_int_param(request.query_params.get("run"), "run"))
        vs = selectors.versus_leader(entries)
        versions = [] if stored is None else [
            {"id": b.pk, "version": b.version, "label": b.label, "sha256": b.sha256}
            for b in benchmarks.visible(user=request.user, team_id=stored.team_id).filter(name=name)
            .defer("problems").order_by("version")]
        return Response({"benchmark": name, "scope": scope, "all": all_checkpoints,
                         "benchmark_info": benchmark_data(stored) if stored else None, "versions": versions,
                         "entries": [{**entry_data(e, rank), "vs_leader": vs.get(e.pk)}
                                     for rank, e in enumerate(entries, start=1)]})


class ExternalEntryCreateApi(APIView):
    @extend_schema(operation_id="leaderboard_entry_create", request=schemas.EntryCreateRequestSerializer,
                   responses={201: schemas.EntrySerializer, **error_responses(400, 401, 403, 404)})
    def post(self, request: Request, benchmark: str) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        entry = services.entry_create_external(user=request.user, team_id=body.get("team"), benchmark=benchmark,
                                               model_name=body.get("model_name"), result=body.get("result"))
        return Response(entry_data(entry), status=201)


class EvaluateApi(APIView):
    @extend_schema(operation_id="leaderboard_evaluate", request=schemas.EvaluateRequestSerializer,
                   responses={202: schemas.EvalJobSerializer, **error_responses(400, 401, 403, 404, 409)})
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        job = jobs.eval_job_queue(user=request.user, body=body)
        return Response({**job_data(job), "job": job.pk}, status=202)


class EvalJobListApi(APIView):
    @extend_schema(operation_id="eval_jobs_list", parameters=[OpenApiParameter("run", int, required=True)],
                   responses={200: schemas.EvalJobListSerializer, **error_responses(400, 401, 404)})
    def get(self, request: Request) -> Response:
        run_id = _int_param(request.query_params.get("run"), "run")
        if run_id is None:
            raise ValidationFailed("run is required", fields=[{"path": "run", "message": "required"}])
        run, listed = jobs.eval_job_list(user=request.user, run_id=run_id)
        return Response({"defaults": jobs.run_defaults(run), "results": [job_data(j) for j in listed]})


class EvalJobDetailApi(APIView):
    @extend_schema(operation_id="eval_job_retrieve",
                   responses={200: schemas.EvalJobSerializer, **error_responses(401, 404)})
    def get(self, request: Request, job_id: int) -> Response:
        return Response(job_data(jobs.eval_job_get(user=request.user, job_id=job_id)))


class EvalJobCancelApi(APIView):
    @extend_schema(operation_id="eval_job_cancel", request=None,
                   responses={200: schemas.EvalJobSerializer, **error_responses(401, 403, 404)})
    def post(self, request: Request, job_id: int) -> Response:
        return Response(job_data(jobs.eval_job_cancel(user=request.user, job_id=job_id)))


class BenchmarksApi(APIView):
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(operation_id="benchmarks_list",
                   responses={200: schemas.BenchmarkSerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response([benchmark_data(b) for b in benchmarks.benchmark_list(user=request.user)])

    @extend_schema(operation_id="benchmark_create",
                   request={"multipart/form-data": schemas.BenchmarkUploadRequestSerializer},
                   responses={201: OpenApiResponse(schemas.BenchmarkSerializer, description="stored as a new version"),
                              200: OpenApiResponse(schemas.BenchmarkSerializer,
                                                   description="the team already had this exact problem list"),
                              **error_responses(400, 401, 403, 404, 415)})
    def post(self, request: Request) -> Response:
        bench, created = benchmarks.benchmark_upload(
            user=request.user, team_id=request.data.get("team"), name=request.data.get("name"),
            upload=request.FILES.get("file"), layout=request.data.get("layout") or None,
            grader=request.data.get("grader") or None)
        return Response(benchmark_data(bench), status=201 if created else 200)


class BenchmarkDetailApi(APIView):
    @extend_schema(operation_id="benchmark_retrieve",
                   responses={200: schemas.BenchmarkDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, benchmark_id: int) -> Response:
        return Response(benchmark_data(benchmarks.benchmark_get(user=request.user, benchmark_id=benchmark_id),
                                       problems=True))


class EntryDetailApi(APIView):
    @extend_schema(operation_id="leaderboard_entry_retrieve",
                   responses={200: schemas.EntryDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, entry_id: int) -> Response:
        entry = selectors.entry_get(user=request.user, entry_id=entry_id)
        problems = selectors.entry_problems(entry)
        bench = entry.benchmark_ref
        prompts = {str(p["id"]): p for p in bench.problems} if bench is not None else {}
        rows = [{**p, "prompt": prompts.get(str(p["id"]), {}).get("prompt")} for p in problems]
        return Response({**entry_data(entry), "benchmark_info": benchmark_data(bench) if bench else None,
                         "problems": rows})


class CompareApi(APIView):
    @extend_schema(operation_id="leaderboard_compare",
                   parameters=[OpenApiParameter("a", int, required=True), OpenApiParameter("b", int, required=True)],
                   responses={200: schemas.CompareSerializer, **error_responses(400, 401, 404)})
    def get(self, request: Request) -> Response:
        ids = {}
        for key in ("a", "b"):
            ids[key] = _int_param(request.query_params.get(key), key)
            if ids[key] is None:
                raise ValidationFailed(f"{key} is required (an entry id)", fields=[{"path": key, "message": "required"}])
        a = selectors.entry_get(user=request.user, entry_id=ids["a"])
        b = selectors.entry_get(user=request.user, entry_id=ids["b"])
        return Response({**selectors.compare_entries(a, b), "a": entry_data(a), "b": entry_data(b)})
