"""Accounts API: the user's teams and personal API tokens."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts import schemas
from webapp.accounts.models import ApiToken
from webapp.accounts.selectors import team_list
from webapp.accounts.services import api_token_create, api_token_revoke
from webapp.common.errors import NotAuthenticated, NotFound, Throttled, ValidationFailed
from webapp.common.schema import error_responses
from webapp.common.throttle import login_blocked, login_failed, login_succeeded
from webapp.common.utils import iso


def _token_data(token: ApiToken) -> dict[str, object]:
    return {"id": token.pk, "name": token.name, "prefix": token.prefix, "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at)}


class TeamListApi(APIView):
    """``GET /api/v1/teams/`` -> ``[{"id", "name", "role"}]``."""

    @extend_schema(responses={200: schemas.TeamMembershipSerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response([{"id": m.team_id, "name": m.team.name, "role": m.role} for m in team_list(user=request.user)])


class TokenListApi(APIView):
    """``GET /api/v1/tokens/`` (the user's keys, without the secret); ``POST {"name"}`` -> 201 with
    ``"key"`` shown this once."""

    @extend_schema(responses={200: schemas.ApiTokenSerializer(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response([_token_data(t) for t in ApiToken.objects.filter(user=request.user)])

    @extend_schema(request=schemas.TokenCreateRequestSerializer,
                   responses={201: schemas.ApiTokenCreatedSerializer, **error_responses(400, 401)})
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        name = body.get("name", "")
        if not isinstance(name, str):
            raise ValidationFailed("name must be a string", fields=[{"path": "name", "message": "a string"}])
        token, raw = api_token_create(user=request.user, name=name)
        return Response({**_token_data(token), "key": raw}, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    @extend_schema(responses={204: None, **error_responses(401, 404)})
    def delete(self, request: Request, token_id: int) -> Response:
        if not api_token_revoke(user=request.user, token_id=token_id):
            raise NotFound(f"token {token_id} not found")
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenObtainApi(APIView):
    """``POST /api/v1/auth/token {"username", "password", "name"?}`` -> 201 ``{"key", ...}``.

    For scripts without a browser session. Failed attempts are throttled per (ip, username)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(request=schemas.TokenObtainRequestSerializer,
                   responses={201: schemas.ApiTokenCreatedSerializer, **error_responses(400, 401, 429)})
    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        username, password, name = body.get("username"), body.get("password"), body.get("name", "api")
        if not isinstance(username, str) or not isinstance(password, str) or not isinstance(name, str):
            raise ValidationFailed("username and password are required",
                                   fields=[{"path": "username", "message": "a string"},
                                           {"path": "password", "message": "a string"}])
        wait = login_blocked(request, username)
        if wait:
            raise Throttled(f"too many failed attempts; try again in {wait} s", retry_after=wait)
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            login_failed(request, username)
            raise NotAuthenticated("wrong username or password")
        login_succeeded(request, username)
        token, raw = api_token_create(user=user, name=name)
        return Response({**_token_data(token), "key": raw}, status=status.HTTP_201_CREATED)
