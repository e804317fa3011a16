from django.contrib import admin

from webapp.runs.models import Checkpoint, Run, RunTransition


class TransitionInline(admin.TabularInline):
    model = RunTransition
    extra = 0
    can_delete = False
    readonly_fields = ("at", "from_status", "to_status", "reason")


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    """Read-mostly: status changes only through the lifecycle services, never by editing a row."""

    list_display = ("id", "name", "team", "status", "launcher", "created_at", "last_heartbeat")
    list_filter = ("status", "launcher", "team")
    search_fields = ("name",)
    readonly_fields = ("status", "status_changed_at", "token_hash", "handle", "acked_seq", "stream_pos",
                       "last_heartbeat", "last_step", "summary", "created_at", "updated_at")
    inlines = (TransitionInline,)


admin.site.register(Checkpoint)
