"""Admin view of leaderboard entries; the paper's reference rows are read-only there too."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from webapp.leaderboards.models import LeaderboardEntry


@admin.register(LeaderboardEntry)
class LeaderboardEntryAdmin(admin.ModelAdmin):
    list_display = ("benchmark", "model_name", "run", "step", "team", "pass_at_1", "k", "is_reference", "created_at")
    list_filter = ("benchmark", "is_reference")
    search_fields = ("benchmark", "model_name", "run__name")
    raw_id_fields = ("run", "team")

    def has_change_permission(self, request: Any, obj: LeaderboardEntry | None = None) -> bool:
        return not (obj is not None and obj.is_reference) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: Any, obj: LeaderboardEntry | None = None) -> bool:
        return not (obj is not None and obj.is_reference) and super().has_delete_permission(request, obj)
