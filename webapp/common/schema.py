"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions; imported by
``CommonConfig.ready`` so the schema at /api/v1/schema/ names the three schemes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.accounts.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Personal API key: `Authorization: Token <key>`"}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.accounts.auth.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class RunTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.runs.auth.RunTokenAuthentication"
    name = "runToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "Run token (ingest endpoint only)"}


class SchemaView(SpectacularAPIView):
    """``/api/v1/schema/``: for logged-in users only (it maps every route and parameter, which an
    outsider has no need for); its errors are JSON in the API's error shape, like every other route's."""

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)
