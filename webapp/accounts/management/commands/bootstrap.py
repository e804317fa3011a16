"""``manage.py bootstrap --username U --password P --team T [--role owner]``: idempotent setup.

Creates (or updates) a user, a team and the user's membership in it; running it twice changes
nothing the second time. ``make run`` and the tests use it for the demo account.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.accounts.models import Role
from webapp.accounts.services import membership_set, team_get_or_create, user_create_or_update
from webapp.common.errors import ApplicationError


class Command(BaseCommand):
    help = "Create or update a user, a team and the user's role in it (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--team", required=True)
        parser.add_argument("--role", default=Role.OWNER, choices=Role.values)
        parser.add_argument("--email", default="")
        parser.add_argument("--staff", action="store_true", help="also make the user a superuser (admin site)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            user, user_created = user_create_or_update(
                username=opts["username"], password=opts["password"], email=opts["email"],
                is_staff=True if opts["staff"] else None,
            )
            team, team_created = team_get_or_create(name=opts["team"])
            membership_set(user=user, team=team, role=opts["role"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"user {user.username} ({'created' if user_created else 'updated'}), "
            f"team {team.name} ({'created' if team_created else 'exists'}), role {opts['role']}"
        )
