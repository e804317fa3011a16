"""Accounts API: the user's teams, personal API tokens."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.accounts.selectors import team_list


class TeamListApi(APIView):
    """``GET /api/v1/teams/`` -> ``[{"id", "name", "role"}]``."""

    def get(self, request: Request) -> Response:
        return Response([{"id": m.team_id, "name": m.team.name, "role": m.role} for m in team_list(user=request.user)])
