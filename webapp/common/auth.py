"""Credentials shared by the authentication classes of the apps: the stored form of a secret token
and the parsing of the ``Authorization`` header.

This module is a leaf (it imports no app): the classes that turn a credential into a user or a run
live in the app that owns what they look up, and import from here, never the other way round:

* ``webapp.accounts.auth``: ``ApiTokenAuthentication`` (``Authorization: Token <personal api key>``:
  scripts, the CLI) and ``SessionAuthentication`` (the browser's session, with DRF's CSRF check);
* ``webapp.runs.auth``: ``RunTokenAuthentication`` (``Authorization: Bearer <run token>``, the ingest
  endpoint only), which authenticates a *run*, not a user.

Keys and run tokens are stored as SHA-256 hashes; the plain value is shown once and never logged.
"""

from __future__ import annotations

import hashlib
from typing import Any

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
