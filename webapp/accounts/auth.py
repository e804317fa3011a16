"""How a request proves which user sends it (DRF authentication classes of the accounts app).

* ``ApiTokenAuthentication``: ``Authorization: Token <personal api key>`` (scripts, CLI).
* ``SessionAuthentication``: the browser's session, with DRF's CSRF check on unsafe methods.

Both are listed in ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``, token first: its
``WWW-Authenticate`` header turns "no credentials" into 401 rather than 403.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions

from webapp.accounts.models import User
from webapp.accounts.selectors import api_token_user
from webapp.common.auth import header_credentials


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """A personal API key (``accounts.services`` issues it; only its hash is stored)."""

    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[User, None] | None:
        raw = header_credentials(request, self.keyword)
        if raw is None:
            return None
        user = api_token_user(key=raw)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        return user, None

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication (CSRF enforced on unsafe methods); named here so that the
    settings and the OpenAPI schema list every scheme of the API from the apps that own them."""
