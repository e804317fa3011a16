"""Authentication classes of the API.

* ``ApiTokenAuthentication``: ``Authorization: Token <personal api key>`` (scripts, CLI).
* ``SessionAuthentication``: the browser's session, with DRF's CSRF check on unsafe methods.
* ``RunTokenAuthentication``: ``Authorization: Bearer <run token>``, the ingest endpoint only. It
  authenticates a *run*, not a user: ``request.user`` is anonymous and ``request.auth`` is the run.

Keys and run tokens are stored as SHA-256 hashes; the plain value is shown once and never logged.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions


def token_hash(raw: str) -> str:
    """The stored form of a secret token (personal key or run token)."""
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def header_credentials(request: Any, keyword: str) -> str | None:
    """The credential after ``keyword`` in the Authorization header, or None if another scheme is used."""
    header = authentication.get_authorization_header(request).split()
    if not header or header[0].lower() != keyword.lower().encode():
        return None
    if len(header) != 2:
        raise exceptions.AuthenticationFailed(f"invalid {keyword} header: expected '{keyword} <key>'")
    try:
        return header[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("invalid token characters") from None


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        raw = header_credentials(request, self.keyword)
        if raw is None:
            return None
        from webapp.accounts.selectors import api_token_user

        user = api_token_user(key=raw)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        return user, None

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (CSRF enforced on unsafe methods); named here to keep one list."""


class RunTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        raw = header_credentials(request, self.keyword)
        if raw is None:
            return None
        from webapp.runs.selectors import run_for_token

        run = run_for_token(token=raw)
        if run is None:
            raise exceptions.AuthenticationFailed("invalid run token")
        return AnonymousUser(), run

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
