"""Tracking API: the ingest endpoint (run token), metric series and samples (user, team-scoped)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.auth import RunTokenAuthentication
from webapp.common.errors import PayloadTooLarge, PermissionDeniedError, ValidationFailed
from webapp.common.utils import float_param, int_param, loads_lenient
from webapp.runs.models import FINAL_STATUSES, Run, RunStatus
from webapp.runs.selectors import run_get
from webapp.tracking import selectors, services
from webapp.tracking.events import body_may_hold_unstorable

MAX_KEYS_PER_REQUEST = 50


class HasRunToken(BasePermission):
    """The request carries a valid run token (``request.auth`` is its Run)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Run)


class EventIngestApi(APIView):
    """``POST /api/v1/runs/<id>/events`` with ``Authorization: Bearer <run token>``.

    The body is read here (not by a DRF parser) so that its size is checked before it is parsed.
    """

    authentication_classes = (RunTokenAuthentication,)
    permission_classes = (HasRunToken,)
    parser_classes = ()

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, run_id: int) -> Response:
        run: Run = request.auth
        if run.pk != run_id:
            raise PermissionDeniedError("this run token belongs to another run")
        if run.status in FINAL_STATUSES or run.status == RunStatus.DRAFT:
            raise PermissionDeniedError(f"run {run_id} is {run.status}: its token no longer accepts events")
        limit = settings.FIPO_INGEST_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
        raw = request.stream.read(limit + 1) if request.stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        if not raw.strip():
            events: Any = []  # an empty body is a bare heartbeat
        else:
            try:
                events = loads_lenient(raw, check=False)  # unstorable text: rejected per event
            except ValueError as exc:
                raise ValidationFailed(str(exc), fields=[{"path": "", "message": str(exc)}]) from None
        result = services.events_ingest(run_id=run.pk, events=events, check_text=body_may_hold_unstorable(raw))
        return Response(result.as_dict())


class RunMetricsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("keys", str), OpenApiParameter("max_points", int),
                    OpenApiParameter("step_min", int), OpenApiParameter("step_max", int)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get(user=request.user, run_id=run_id)
        params = request.query_params
        names = [k for k in (params.get("keys") or "").split(",") if k]
        if not names:
            return Response({"keys": selectors.metric_key_names(run=run)})
        if len(names) > MAX_KEYS_PER_REQUEST:
            raise ValidationFailed("too many keys", fields=[{"path": "keys", "message": f"at most {MAX_KEYS_PER_REQUEST}"}])
        default = settings.FIPO_CHART_MAX_POINTS
        max_points = int_param(params, "max_points", default=default, lo=2, hi=10 * default)
        step_min = int_param(params, "step_min", lo=-(2**31), hi=2**31)
        step_max = int_param(params, "step_max", lo=-(2**31), hi=2**31)
        stream_pos = run.stream_pos  # read before the series: the client replays items after it
        series = selectors.metric_series(run=run, names=names, max_points=max_points, step_min=step_min,
                                         step_max=step_max)
        return Response({"series": series, "stream_pos": stream_pos})


class RunSamplesApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("step", int), OpenApiParameter("min_reward", float),
                    OpenApiParameter("max_reward", float), OpenApiParameter("order", str)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get(user=request.user, run_id=run_id)
        params = request.query_params
        order = params.get("order") or "index"
        if order not in selectors.SAMPLE_ORDERS:
            raise ValidationFailed("unknown order", fields=[{"path": "order", "message": f"one of {', '.join(selectors.SAMPLE_ORDERS)}"}])
        steps, samples, _ = selectors.sample_list(
            run=run, step=int_param(params, "step", lo=0, hi=2**31), min_reward=float_param(params, "min_reward"),
            max_reward=float_param(params, "max_reward"), order=order,
        )
        return Response({"steps": steps,
                         "results": [services.sample_summary(s, prompt=s.prompt_head) for s in samples]})


class SampleDetailApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, sample_id: int) -> Response:
        sample = selectors.sample_get(user=request.user, sample_id=sample_id)
        return Response(selectors.sample_detail(sample))
