"""The OpenAPI schema's shared parts (drf-spectacular; imported by ``CommonConfig.ready``): the three
authentication schemes, the ``Error`` envelope every 4xx answer references, and the bridge that
serves a pydantic ``TypeAdapter``'s JSON Schema as a component. Each app describes its own bodies
in its ``schemas.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
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


# ------------------------------------------------------------------------- shared components
# The serializers below describe bodies for the schema only: the views build their answers as plain
# dicts (one selector or service each); tests/webapp/test_openapi_conformance.py checks the real
# answers of every route against these descriptions, so the two cannot drift apart.
class ErrorFieldSerializer(serializers.Serializer):
    """One input that was wrong: its dotted path (``""`` for the body as a whole) and why."""

    path = serializers.CharField(help_text='Dotted path of the input, e.g. "trainer.lr"; "" for the whole body.')
    message = serializers.CharField()


class ErrorBodySerializer(serializers.Serializer):
    # A string, not an enum: a client generated today must still parse a code added tomorrow.
    code = serializers.CharField(help_text=(
        "Stable, for programs: validation_error, not_authenticated, permission_denied, not_found, "
        "method_not_allowed, conflict, payload_too_large, throttled, unavailable, database_busy, "
        "server_error (docs/api-contract.md \"Errors\")."))
    message = serializers.CharField(help_text="For humans.")
    fields = ErrorFieldSerializer(many=True, required=False,
                                  help_text="Every validation_error has it; other codes may.")


class ErrorSerializer(serializers.Serializer):
    """The one error envelope of every route (``webapp.common.errors``)."""

    error = ErrorBodySerializer()


ERROR_MEANINGS: dict[int, str] = {
    400: "validation_error: the input is wrong; `fields` names each wrong input",
    401: "not_authenticated: no credentials, or wrong ones",
    403: "permission_denied: the credentials do not allow this (a viewer writing, another run's token)",
    404: "not_found: no such object among those the caller may see",
    409: "conflict: not possible in the object's present state",
    413: "payload_too_large: the body is over a limit the message names",
    415: "validation_error: the body is not of a media type the route reads",
    429: "throttled: too many requests; `Retry-After` says when to try again",
    503: "unavailable / database_busy: retry after `Retry-After` seconds",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``responses`` entries for the given error statuses, each the ``Error`` component (use as
    ``responses={200: X, **error_responses(401, 404)}``)."""
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]) for code in statuses}


class JsonSchemaComponent:
    """Base of marker classes that stand for a JSON Schema built elsewhere (a pydantic
    ``TypeAdapter``'s, for types that are not one ``BaseModel``): ``extend_schema(request=Marker)``
    serves it as the component ``name``, its ``$defs`` as components of their own."""

    name: ClassVar[str]
    build: ClassVar[Callable[[str], dict[str, Any]]]  # ref_template -> schema


def json_schema_component(name: str, build: Callable[[str], dict[str, Any]]) -> type[JsonSchemaComponent]:
    """A marker for ``extend_schema`` whose schema is ``build(ref_template)``."""
    return type(name, (JsonSchemaComponent,), {"name": name, "build": staticmethod(build)})


class JsonSchemaComponentExtension(OpenApiSerializerExtension):
    target_class = JsonSchemaComponent
    match_subclasses = True

    def get_name(self, auto_schema: Any, direction: Any) -> str:
        return self.target.name

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = self.target.build("#/components/schemas/{model}")
        for sub_name, sub_schema in schema.pop("$defs", {}).items():
            auto_schema.registry.register_on_missing(ResolvedComponent(
                name=sub_name, type=ResolvedComponent.SCHEMA, object=sub_name, schema=sub_schema))
        return schema


def object_serializer(name: str, fields: dict[str, serializers.Field], doc: str = "") -> type[serializers.Serializer]:
    """A documentation serializer whose field names need not be Python names (``"reward/mean"``,
    ``"from"``); the class name is the component's name."""
    return type(name, (serializers.Serializer,), {**fields, "__doc__": doc or None, "__module__": __name__})


def enum_field(name: str, values: Iterable[str], description: str) -> type[serializers.CharField]:
    """A string field whose schema is the enum component ``name`` (one component however many
    fields use it, where drf-spectacular would name one per field)."""
    choices = list(values)
    marker = json_schema_component(name, lambda _ref: {"type": "string", "enum": choices, "description": description})
    field = type(f"{name}Field", (serializers.CharField,), {"__doc__": description, "__module__": __name__})
    return extend_schema_field(marker)(field)
