"""Reads of accounts data. Team scoping of every other app starts from ``user_team_ids``."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from webapp.accounts.models import ApiToken, Membership, Role, User
from webapp.common.auth import token_hash

# last_used_at is refreshed at most this often, so token auth is not a write per request.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_token_user(*, key: str) -> User | None:
    """The active user owning this personal API key, or None."""
    token = ApiToken.objects.select_related("user").filter(key_hash=token_hash(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def user_team_ids(*, user: User) -> list[int]:
    """Ids of the teams the user belongs to (any role). Anonymous users belong to none."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(Membership.objects.filter(user=user).values_list("team_id", flat=True))


def user_role(*, user: User, team_id: int) -> str | None:
    """The user's role in a team, or None when not a member."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, team_id=team_id).values_list("role", flat=True).first()


def user_can_write(*, user: User, team_id: int) -> bool:
    """Owners and members may create, launch, cancel and delete runs; viewers only read."""
    return user_role(user=user, team_id=team_id) in {Role.OWNER, Role.MEMBER}


def team_list(*, user: User) -> QuerySet[Membership]:
    """The user's memberships with their team, for ``GET /api/v1/teams/``."""
    return Membership.objects.filter(user=user).select_related("team").order_by("team__name")
