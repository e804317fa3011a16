"""Middleware of the web app."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from webapp.common.errors import cache_unavailable, error_body, is_busy

logger = logging.getLogger(__name__)


class DatabaseBusyMiddleware:
    """A request that found the database locked (another team's large write, a long migration)
    answers 503 with ``Retry-After`` instead of 500: nothing was written (its transaction rolled
    back), and clients such as the tracking client retry 503s."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if cache_unavailable(exception):  # e.g. the login throttle, which must not go unthrottled
            return _retry_later(request, exception, "unavailable", "a backing service (the cache) is unavailable")
        if is_busy(exception):
            return _retry_later(request, exception, "database_busy", "the database is busy")
        return None


def _retry_later(request: HttpRequest, exception: Exception, code: str, what: str) -> HttpResponse:
    """503 with ``Retry-After``: the request was refused for a passing reason, nothing was written."""
    logger.warning("%s on %s %s: %s", what, request.method, request.path, exception)
    wait = settings.FIPO_DB_BUSY_RETRY_AFTER_S
    response = JsonResponse(error_body(code, f"{what}; retry in {wait} s"), status=503)
    response["Retry-After"] = str(wait)
    return response
