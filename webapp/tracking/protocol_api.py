"""The tracking protocol described for clients: its JSON Schema and the per-token channel catalog.

Both come from the engine's single definitions (``fipo_engine.tracking.protocol``,
``fipo_engine.token_channels``), so what is served is what the ingest and the trainer use. Kept
apart from ``api.py`` (the ingest and the run's data) because neither reads the database.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fipo_engine import token_channels
from fipo_engine.tracking import protocol
from webapp.common.schema import error_responses
from webapp.tracking import schemas


@cache
def _schema() -> dict[str, Any]:
    return protocol.json_schema()


class TrackingSchemaApi(APIView):
    """``GET /api/v1/tracking/schema.json``: JSON Schema of the ingest body (a list of events)."""

    @extend_schema(responses={200: OpenApiResponse(schemas.JSON_SCHEMA_DOCUMENT, description="the ingest body's JSON Schema"),
                              **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(_schema())


class TokenChannelsApi(APIView):
    """``GET /api/v1/tracking/channels``: the per-token channels a sample may carry, in display order."""

    @extend_schema(responses={200: schemas.TokenChannelCatalogSerializer, **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response({"channels": token_channels.as_dicts()})
