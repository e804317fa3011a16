"""Tracking API: the ingest endpoint (run token), metric series and samples (user, team-scoped)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import Error as DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions as drf_exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.common.auth import header_credentials, token_hash
from webapp.common.errors import (
    ApplicationError,
    NotAuthenticated,
    PayloadTooLarge,
    ServiceUnavailable,
    Throttled,
    ValidationFailed,
    cache_unavailable,
    database_unavailable,
    error_body,
)
from webapp.common.schema import error_responses
from webapp.common.utils import float_param, int_param, loads_lenient
from webapp.runs.auth import RunTokenAuthentication
from webapp.runs.models import Run
from webapp.runs.selectors import run_get
from webapp.tracking import schemas, selectors, services
from webapp.tracking.events import body_may_hold_unstorable
from webapp.tracking.fipo import fipo_settings

MAX_KEYS_PER_REQUEST = 50

logger = logging.getLogger(__name__)


class HasRunToken(BasePermission):
    """The request carries a valid run token (``request.auth`` is its Run)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Run)


class EventIngestApi(APIView):
    """``POST /api/v1/runs/<id>/events`` with ``Authorization: Bearer <run token>``.

    The hot path of the tracking protocol is a plain Django view (``ingest_events``): DRF's request
    wrapping, authentication/permission/renderer layers and a separate token query were a fifth of
    a metric batch's time. The run token is checked by the same query that locks the run
    (``services.events_ingest_with_token``). This class stays for the OpenAPI schema and answers the
    other methods with DRF's usual 401/405; its ``post`` is the same function.
    """

    authentication_classes = (RunTokenAuthentication,)
    permission_classes = (HasRunToken,)
    parser_classes = ()

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        drf_view = super().as_view(**initkwargs)

        def view(request: HttpRequest, run_id: int) -> HttpResponse:
            if request.method == "POST":
                return ingest_events(request, run_id)
            return drf_view(request, run_id=run_id)

        view.cls = cls  # type: ignore[attr-defined]  # what drf-spectacular and DRF's tooling read
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        view.login_required = False  # type: ignore[attr-defined]
        return csrf_exempt(view)

    @extend_schema(
        request={"application/json": schemas.TrackingEventList},  # parsed by the view itself (no DRF parser)
        responses={200: schemas.IngestResultSerializer, **error_responses(400, 401, 403, 413, 429, 503)},
        description="A batch of tracking events (docs/api-contract.md \"Ingest\"). An event the protocol "
                    "refuses is answered in `rejected`, the rest of the batch is stored.",
    )
    def post(self, request: Request, run_id: int) -> HttpResponse:
        return ingest_events(request._request, run_id)


def _json_response(data: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def ingest_events(request: HttpRequest, run_id: int) -> HttpResponse:
    """The ingest endpoint (docs/api-contract.md "Ingest"): 401 without a valid run token, 403 for
    another run's token or a finished run, then 413 / 400 for the body, then the batch answer."""
    try:
        try:
            token = header_credentials(request, RunTokenAuthentication.keyword)
        except drf_exceptions.AuthenticationFailed as exc:
            raise NotAuthenticated(str(exc.detail)) from None
        if token is None:
            raise NotAuthenticated(str(drf_exceptions.NotAuthenticated.default_detail))
        _check_rate(run_id, token)
        events: Any = None
        body_error: ApplicationError | None = None
        check_text = False
        try:
            raw = _read_body(request)
            check_text = body_may_hold_unstorable(raw)
            events = loads_lenient(raw, check=False) if raw.strip() else []  # empty: a bare heartbeat
        except ValueError as exc:  # malformed JSON / not UTF-8; unstorable text is rejected per event
            body_error = ValidationFailed(str(exc), fields=[{"path": "", "message": str(exc)}])
        except ApplicationError as exc:
            body_error = exc
        result = services.events_ingest_with_token(run_id=run_id, token=token, events=events,
                                                   check_text=check_text, body_error=body_error)
    except (ApplicationError, DatabaseError) as exc:
        # A database that is down or restarting is a 503 (the trainer retries), not a 500.
        err = database_unavailable(exc) or exc
        if not isinstance(err, ApplicationError):
            raise
        response = _json_response(error_body(err.code, err.message, err.fields), status=err.status)
        if isinstance(err, NotAuthenticated):
            response["WWW-Authenticate"] = RunTokenAuthentication.keyword
        if isinstance(err, Throttled) and err.retry_after:
            response["Retry-After"] = str(err.retry_after)
        if isinstance(err, ServiceUnavailable):
            response["Retry-After"] = str(err.retry_after)
        return response
    return _json_response(result.as_dict())


RATE_WINDOW_S = 10


def _check_rate(run_id: int, token: str) -> None:
    """At most ``FIPO_INGEST_MAX_REQUESTS_PER_S`` requests per second per run (over a 10 s window),
    before any database work. Keyed on the token too: requests with made-up tokens count in buckets
    of their own and cannot use up the real trainer's."""
    limit = settings.FIPO_INGEST_MAX_REQUESTS_PER_S * RATE_WINDOW_S
    if limit <= 0:
        return
    window = int(time.time()) // RATE_WINDOW_S
    key = f"fipo:ingest-rate:{run_id}:{token_hash(token)[:16]}:{window}"
    try:
        cache.add(key, 0, timeout=RATE_WINDOW_S * 2)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=RATE_WINDOW_S * 2)
            count = 1
    except Exception as exc:
        if not cache_unavailable(exc):
            raise
        # the guard, not a dependency: while Redis restarts, a trainer's events are still stored
        logger.warning("ingest rate limit skipped for run %s: the cache is unavailable (%s)", run_id, exc)
        return
    if count > limit:
        wait = RATE_WINDOW_S - int(time.time()) % RATE_WINDOW_S
        raise Throttled(f"at most {settings.FIPO_INGEST_MAX_REQUESTS_PER_S} ingest requests per second per run; "
                        f"retry in {wait} s", retry_after=wait)


def _read_body(request: HttpRequest) -> bytes:
    """The body, refused (413) above ``FIPO_INGEST_MAX_BYTES`` before it is parsed."""
    limit = settings.FIPO_INGEST_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    raw = request.read(limit + 1)  # not ``request.body``: Django's 2.5 MB form limit does not apply
    if len(raw) > limit:
        raise PayloadTooLarge(f"body is over the {limit}-byte limit")
    return raw


class RunMetricsApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("keys", str, description="comma-separated metric names (none: list the names)"),
                    OpenApiParameter("max_points", int), OpenApiParameter("step_min", int),
                    OpenApiParameter("step_max", int)],
        responses={200: schemas.RunMetricsResponse, **error_responses(400, 401, 404)},
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
                    OpenApiParameter("max_reward", float),
                    OpenApiParameter("order", str, enum=list(selectors.SAMPLE_ORDERS))],
        responses={200: schemas.SampleListSerializer, **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get(user=request.user, run_id=run_id)
        params = request.query_params
        order = params.get("order") or "index"
        if order not in selectors.SAMPLE_ORDERS:
            raise ValidationFailed("unknown order", fields=[{"path": "order", "message": f"one of {', '.join(selectors.SAMPLE_ORDERS)}"}])
        steps, samples, step = selectors.sample_list(
            run=run, step=int_param(params, "step", lo=0, hi=2**31), min_reward=float_param(params, "min_reward"),
            max_reward=float_param(params, "max_reward"), order=order,
        )
        return Response({"steps": steps, "step": step,
                         "results": [services.sample_summary(s, prompt=s.prompt_head) for s in samples],
                         "fipo": fipo_settings(run.config)})


class RunSamplePositionsApi(APIView):
    """The per-step position summary, apart from the list: it decodes every sample of the step, and
    the page asks for it after the selected sample is drawn, off the 20k-token render's critical path."""

    @extend_schema(parameters=[OpenApiParameter("step", int, description="default: the latest step")],
                   responses={200: schemas.SamplePositionsSerializer, **error_responses(400, 401, 404)})
    def get(self, request: Request, run_id: int) -> Response:
        run = run_get(user=request.user, run_id=run_id)
        step = int_param(request.query_params, "step", lo=0, hi=2**31)
        if step is None:
            steps = selectors.sample_steps(run=run)
            step = steps[-1] if steps else None
        return Response({"step": step, **selectors.step_position_summary(run=run, step=step)})


class SampleDetailApi(APIView):
    @extend_schema(responses={200: schemas.SampleDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, sample_id: int) -> Response:
        sample = selectors.sample_get(user=request.user, sample_id=sample_id)
        return Response(selectors.sample_detail(sample))
