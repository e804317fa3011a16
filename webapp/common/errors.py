"""One error shape for every endpoint, with a stable code (docs/api-contract.md "Errors").

Services raise ``ApplicationError`` subclasses; DRF's own exceptions (validation, auth, 404, throttling,
parse errors) are mapped to the same shape by ``exception_handler`` so a client parses one format:

    {"error": {"code": "validation_error", "message": "...", "fields": [{"path": "trainer.lr", "message": "..."}]}}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """Base of every error a service raises on purpose; ``code`` is stable, ``message`` is for humans."""

    code = "server_error"
    status = 500

    def __init__(self, message: str, *, fields: Iterable[Mapping[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = [dict(f) for f in fields or ()]


class ValidationFailed(ApplicationError):
    code, status = "validation_error", 400


class NotAuthenticated(ApplicationError):
    code, status = "not_authenticated", 401


class PermissionDeniedError(ApplicationError):
    code, status = "permission_denied", 403


class NotFound(ApplicationError):
    code, status = "not_found", 404


class Conflict(ApplicationError):
    code, status = "conflict", 409


class PayloadTooLarge(ApplicationError):
    code, status = "payload_too_large", 413


class Throttled(ApplicationError):
    code, status = "throttled", 429

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(ApplicationError):
    """The database cannot be reached (restarting, failing over): try again shortly. Trainers'
    senders retry any 5xx with backoff, so an outage delays events instead of losing them."""

    code, status = "unavailable", 503
    retry_after = 2


class DatabaseBusy(ServiceUnavailable):
    """The database was locked (another team's large write, a long migration): nothing was written."""

    code = "database_busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# What "the database is busy, try again" looks like: SQLite's write lock, PostgreSQL's lock and
# statement timeouts, and a connection pool with no free connection.
_BUSY = ("database is locked", "database table is locked", "lock timeout", "statement timeout",
         "couldn't get a connection", "pool timeout")


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` means the database was too busy, not that the request was wrong (the API's
    ``database_unavailable`` and the middleware's 503 for non-API views both ask this)."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and any(part in text for part in _BUSY)


def cache_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is the cache's server (Redis) being unreachable: a restart, not a bug."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # the embedded mode's local-memory cache never raises these
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


def database_unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for a connection-level database error (``OperationalError``/``InterfaceError``:
    server down, connection lost, pool exhausted; ``database_busy`` when it was a lock), None for
    anything else."""
    if is_busy(exc):
        wait = settings.FIPO_DB_BUSY_RETRY_AFTER_S
        return DatabaseBusy(f"the database is busy; retry in {wait} s", retry_after=wait)
    if isinstance(exc, OperationalError | InterfaceError):
        return ServiceUnavailable(f"the database is unavailable, retry later ({type(exc).__name__})")
    return None


def error_body(code: str, message: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The JSON body of an error (also used by non-DRF views such as the login page's JSON answers)."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def _flatten_drf_detail(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested ``{"field": ["msg"]}`` detail -> ``[{"path": "field", "message": "msg"}]``."""
    out: list[dict[str, str]] = []
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            path = prefix if key == "non_field_errors" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten_drf_detail(value, path))
    elif isinstance(detail, list):
        if all(not isinstance(item, (Mapping, list)) for item in detail):
            out.extend({"path": prefix, "message": str(item)} for item in detail)
        else:
            for i, item in enumerate(detail):
                out.extend(_flatten_drf_detail(item, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out.append({"path": prefix, "message": str(detail)})
    return out


_DRF_CODES: dict[type[drf.APIException], tuple[str, int]] = {
    drf.ValidationError: ("validation_error", 400),
    drf.ParseError: ("validation_error", 400),
    drf.UnsupportedMediaType: ("validation_error", 415),
    drf.NotAuthenticated: ("not_authenticated", 401),
    drf.AuthenticationFailed: ("not_authenticated", 401),
    drf.PermissionDenied: ("permission_denied", 403),
    drf.NotFound: ("not_found", 404),
    drf.MethodNotAllowed: ("method_not_allowed", 405),
    drf.NotAcceptable: ("not_acceptable", 406),
    drf.Throttled: ("throttled", 429),
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: every error becomes ``{"error": {code, message, fields?}}``."""
    exc = database_unavailable(exc) or exc
    if isinstance(exc, ApplicationError):
        response = Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
        if isinstance(exc, Throttled | ServiceUnavailable) and exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "request body too large"), status=413)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, drf.APIException):
        return response  # unexpected: Django's 500 handler answers (and logs) it
    code, status = next(
        ((c, s) for klass, (c, s) in _DRF_CODES.items() if isinstance(exc, klass)), ("error", exc.status_code)
    )
    if isinstance(exc, drf.ValidationError):
        fields = _flatten_drf_detail(exc.detail)
        message = "; ".join(f"{f['path']}: {f['message']}" if f["path"] else f["message"] for f in fields)
        response.data = error_body(code, message or "invalid input", fields)
    elif code == "validation_error":  # a parse error: the body as a whole is wrong
        response.data = error_body(code, str(exc.detail), [{"path": "", "message": str(exc.detail)}])
    else:
        response.data = error_body(code, str(exc.detail))
    response.status_code = status
    return response
