"""Writes of accounts data: users, teams, memberships, personal API tokens."""

from __future__ import annotations

import secrets

from django.db import transaction

from webapp.accounts.models import ApiToken, Membership, Role, Team, User
from webapp.common.auth import token_hash
from webapp.common.errors import ValidationFailed

API_KEY_PREFIX = "fipo_"


@transaction.atomic
def user_create_or_update(*, username: str, password: str | None = None, email: str = "",
                          is_staff: bool | None = None) -> tuple[User, bool]:
    """Create the user or update its password; returns ``(user, created)``. Idempotent."""
    if not username.strip():
        raise ValidationFailed("username is required", fields=[{"path": "username", "message": "required"}])
    user, created = User.objects.get_or_create(username=username, defaults={"email": email})
    changed = False
    if password is not None and not user.check_password(password):
        user.set_password(password)
        changed = True
    if is_staff is not None and user.is_staff != is_staff:
        user.is_staff = user.is_superuser = is_staff
        changed = True
    if changed or created:
        user.save()
    return user, created


@transaction.atomic
def team_get_or_create(*, name: str) -> tuple[Team, bool]:
    if not name.strip():
        raise ValidationFailed("team name is required", fields=[{"path": "team", "message": "required"}])
    return Team.objects.get_or_create(name=name)


@transaction.atomic
def membership_set(*, user: User, team: Team, role: str) -> Membership:
    """Give ``user`` exactly ``role`` in ``team`` (creating the membership if needed)."""
    if role not in Role.values:
        raise ValidationFailed(f"unknown role {role!r}; valid: {', '.join(Role.values)}",
                               fields=[{"path": "role", "message": "unknown role"}])
    membership, _ = Membership.objects.update_or_create(user=user, team=team, defaults={"role": role})
    return membership


def api_token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Issue a personal API key; the plain key is returned once and only its hash is stored."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name[:100], prefix=raw[:12], key_hash=token_hash(raw))
    return token, raw


def api_token_revoke(*, user: User, token_id: int) -> bool:
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return bool(deleted)
