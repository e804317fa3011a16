"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions; imported by
``CommonConfig.ready`` so the schema at /api/v1/schema/ names the three schemes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.common.auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Personal API key: `Authorization: Token <key>`"}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.common.auth.SessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class RunTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webapp.common.auth.RunTokenAuthentication"
    name = "runToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "Run token (ingest endpoint only)"}
