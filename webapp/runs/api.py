"""Runs API (docs/api-contract.md "Runs"): thin views that call one selector or service each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fipo_engine import metrics_catalog
from fipo_engine.config import PRESETS, json_schema, preset
from webapp.accounts.models import Membership, Role, User
from webapp.common.errors import ValidationFailed
from webapp.common.schema import error_responses
from webapp.common.utils import int_param, iso
from webapp.runs import schemas, selectors, services
from webapp.runs.models import Run, RunStatus
from worker.launchers import LauncherError, get_launcher

LOG_TAIL_BYTES = 4000
LOG_CHUNK_BYTES = 256 * 1024


# ------------------------------------------------------------------------------- shapes
def _writable_teams(user: User) -> set[int]:
    return set(Membership.objects.filter(user=user, role__in=[Role.OWNER, Role.MEMBER]).values_list("team_id", flat=True))


def _is_owner(user: User, team_id: int) -> bool:
    return Membership.objects.filter(user=user, team_id=team_id, role=Role.OWNER).exists()


def run_data(run: Run, *, can_write: bool) -> dict[str, Any]:
    """The ``Run`` shape."""
    summary = run.summary or {}
    return {
        "id": run.pk, "name": run.name, "team": {"id": run.team_id, "name": run.team.name},
        "created_by": run.created_by.username if run.created_by else "", "status": run.status,
        "preset": run.preset, "launcher": run.launcher, "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at), "last_step": run.last_step,
        "summary": {k: summary.get(k) for k in metrics_catalog.RUN_SUMMARY_KEYS},
        "can_launch": selectors.run_can_launch(run=run, can_write=can_write),
        "can_cancel": selectors.run_can_cancel(run=run, can_write=can_write),
        "url": f"/runs/{run.pk}/",
    }


def run_detail_data(run: Run, *, user: User) -> dict[str, Any]:
    """The ``RunDetail`` shape. ``stream_pos`` is read first: everything shown is at least that new.

    ``handle`` (a pid and absolute work directory, or a cluster URL) is shown to the team's owners
    only. ``log_tail`` is read from this machine only: a GET never waits on a cluster (the log view,
    ``RunLogApi``, asks the launcher, with a short timeout)."""
    run.refresh_from_db()
    can_write = run.team_id in _writable_teams(user)
    data = run_data(run, can_write=can_write)
    checkpoints = selectors.run_checkpoints(run=run)
    data.update({
        "stream_pos": run.stream_pos,
        "config": run.config, "schema_version": run.schema_version,
        "transitions": [{"at": iso(t.at), "from": t.from_status, "to": t.to_status, "reason": t.reason}
                        for t in run.transitions.order_by("id")],
        "checkpoints": [{"step": c.step, "uri": c.uri, "at": iso(c.at)} for c in checkpoints],
        "can_resume": selectors.run_can_resume(run=run, can_write=can_write, checkpoints=checkpoints),
        "handle": run.handle if _is_owner(user, run.team_id) else None,
        "last_heartbeat": iso(run.last_heartbeat),
        "log_tail": _read_file(services.run_paths(run)[1], None)[0] if run.launcher == "local" else "",
    })
    return data


def _read_log(run: Run, *, offset: int | None) -> tuple[str, int]:
    """Text of the run log from byte ``offset`` (None: the tail), and the offset after it.

    Local jobs write the log on this machine (``FIPO_RUNS_DIR/<id>-<uid>/run.log``); other launchers are
    asked through their ``read_log``.
    """
    _, log_path = services.run_paths(run)
    if run.launcher != "local" and run.handle:

        try:
            text, new_offset = get_launcher(run.launcher).read_log(run.handle, log_path, offset or 0)
        except LauncherError:
            return "", offset or 0
        return (text[-LOG_TAIL_BYTES:] if offset is None else text), new_offset
    return _read_file(log_path, offset)


def _read_file(path: Path, offset: int | None) -> tuple[str, int]:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - LOG_TAIL_BYTES) if offset is None else min(offset, size)
            handle.seek(start)
            chunk = handle.read(LOG_CHUNK_BYTES)
    except OSError:
        return "", offset or 0
    return chunk.decode("utf-8", "replace"), start + len(chunk)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed("the body must be a JSON object", fields=[{"path": "", "message": "expected an object"}])
    return request.data


# -------------------------------------------------------------------------------- views
class RunListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("team", int), OpenApiParameter("status", str), OpenApiParameter("q", str),
                    OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: schemas.RunListSerializer, **error_responses(400, 401)}, operation_id="runs_list",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        status_filter = params.get("status") or None
        if status_filter is not None and status_filter not in RunStatus.values:
            raise ValidationFailed("unknown status", fields=[{"path": "status", "message": f"one of {', '.join(RunStatus.values)}"}])
        qs = selectors.run_list(user=request.user, team_id=int_param(params, "team", lo=0, hi=2**62),
                                status=status_filter, q=(params.get("q") or "")[:200] or None)
        limit = int_param(params, "limit", default=100, lo=1, hi=500)
        offset = int_param(params, "offset", default=0, lo=0, hi=2**31)
        writable = _writable_teams(request.user)
        page = list(qs[offset:offset + limit])
        return Response({"count": qs.count(),
                         "results": [run_data(run, can_write=run.team_id in writable) for run in page]})

    @extend_schema(request=schemas.RunCreateRequestSerializer,
                   responses={201: schemas.RunDetailSerializer, **error_responses(400, 401, 403)})
    def post(self, request: Request) -> Response:
        body = _body(request)
        run = services.run_create(user=request.user, team_id=body.get("team"), name=body.get("name"),
                                  preset=body.get("preset"), overrides=body.get("overrides"), config=body.get("config"))
        return Response(run_detail_data(run, user=request.user), status=status.HTTP_201_CREATED)


class RunDetailApi(APIView):
    @extend_schema(responses={200: schemas.RunDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        return Response(run_detail_data(run, user=request.user))

    @extend_schema(responses={204: None, **error_responses(401, 403, 404, 409)})
    def delete(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        services.run_delete(user=request.user, run=run)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunLaunchApi(APIView):
    @extend_schema(request=None, responses={202: schemas.RunDetailSerializer, **error_responses(401, 403, 404, 409)})
    def post(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        run = services.run_launch(run=run, user=request.user)
        return Response(run_detail_data(run, user=request.user), status=status.HTTP_202_ACCEPTED)


class RunCancelApi(APIView):
    @extend_schema(request=None, responses={202: schemas.RunDetailSerializer, **error_responses(401, 403, 404, 409)})
    def post(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        run = services.run_cancel(run=run, user=request.user)
        return Response(run_detail_data(run, user=request.user), status=status.HTTP_202_ACCEPTED)


class RunResumeApi(APIView):
    @extend_schema(request=None, responses={202: schemas.RunDetailSerializer, **error_responses(401, 403, 404, 409)})
    def post(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        run = services.run_resume(run=run, user=request.user)
        return Response(run_detail_data(run, user=request.user), status=status.HTTP_202_ACCEPTED)


class RunCloneApi(APIView):
    @extend_schema(request=None, responses={201: schemas.RunDetailSerializer, **error_responses(401, 403, 404)})
    def post(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        clone = services.run_clone(user=request.user, run=run)
        return Response(run_detail_data(clone, user=request.user), status=status.HTTP_201_CREATED)


class RunLogApi(APIView):
    @extend_schema(parameters=[OpenApiParameter("offset", int, description="byte offset (default 0)")],
                   responses={200: schemas.RunLogSerializer, **error_responses(400, 401, 404)})
    def get(self, request: Request, run_id: int) -> Response:
        run = selectors.run_get(user=request.user, run_id=run_id)
        offset = int_param(request.query_params, "offset", default=0, lo=0, hi=2**62)
        text, new_offset = _read_log(run, offset=offset)
        return Response({"text": text, "offset": new_offset})


class ConfigSchemaApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(
        {"type": "object", "description": "A JSON Schema (draft 2020-12) document."}, description="JSON Schema of RunConfig"),
                              **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(json_schema())


class ConfigPresetsApi(APIView):
    @extend_schema(responses={200: schemas.ConfigPresetSerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response([{"name": name, "title": title, "config": preset(name).model_dump(mode="json")}
                         for name, (title, _) in PRESETS.items()])


class MetricsCatalogApi(APIView):
    @extend_schema(responses={200: schemas.MetricsCatalogSerializer, **error_responses(401)})
    def get(self, request: Request) -> Response:
        groups = [{"name": name, "title": title} for name, title in metrics_catalog.GROUPS.items()]
        return Response({"metrics": metrics_catalog.as_dicts(), "groups": groups})


