"""How a trainer proves which run it reports for (the ingest endpoint's DRF authentication class).

``RunTokenAuthentication``: ``Authorization: Bearer <run token>``. It authenticates a *run*, not a
user: ``request.user`` is anonymous and ``request.auth`` is the run. The token is issued when the
run's job starts (``services.run_start_job``); only its hash is stored.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from webapp.common.auth import header_credentials
from webapp.runs.models import Run
from webapp.runs.selectors import run_for_token


class RunTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[AnonymousUser, Run] | None:
        raw = header_credentials(request, self.keyword)
        if raw is None:
            return None
        run = run_for_token(token=raw)
        if run is None:
            raise exceptions.AuthenticationFailed("invalid run token")
        return AnonymousUser(), run

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
