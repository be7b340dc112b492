from django.contrib import admin

from recovery.forms import RestoreTargetForm
from recovery.models import (
    CanaryBaseline,
    HeartbeatState,
    Restore,
    RestoreTarget,
    RestoreTest,
    RPOTarget,
    RTOTarget,
    ServiceLevel,
)


@admin.register(RTOTarget)
class RTOTargetAdmin(admin.ModelAdmin):
    list_display = ("failure_type", "target", "notes", "updated")


@admin.register(RPOTarget)
class RPOTargetAdmin(admin.ModelAdmin):
    list_display = ("data_class", "target", "notes", "updated")


@admin.register(ServiceLevel)
class ServiceLevelAdmin(admin.ModelAdmin):
    list_display = ("availability_percent", "rto", "rpo", "updated")


@admin.register(RestoreTarget)
class RestoreTargetAdmin(admin.ModelAdmin):
    """The portal's form: endpoint-bound, write-only password, paths below the allowed roots."""

    form = RestoreTargetForm
    list_display = ("name", "kind", "where", "allow_replace", "updated")
    list_filter = ("kind",)
    search_fields = ("name", "host", "path")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # The saving user decides whether command hooks may change (JobHooksMixin).
        return type(form.__name__, (form,), {"user": request.user})

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if getattr(obj, "password_cleared", False):
            self.message_user(
                request,
                f"The server of {obj} changed: its stored password was cleared.",
                level="warning",
            )


class ReadOnlyRunAdmin(admin.ModelAdmin):
    """Runs are evidence: shown, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RestoreTest)
class RestoreTestAdmin(ReadOnlyRunAdmin):
    list_display = ("pk", "source", "backup_run", "trigger", "status", "finished", "rto")
    list_filter = ("status", "trigger")
    list_select_related = ("source", "backup_run")


@admin.register(Restore)
class RestoreAdmin(ReadOnlyRunAdmin):
    list_display = ("pk", "source", "target", "onto_source", "failure_type", "status", "rto")
    list_filter = ("status", "failure_type")
    list_select_related = ("source",)
    exclude = ("target_password",)


@admin.register(HeartbeatState)
class HeartbeatStateAdmin(ReadOnlyRunAdmin):
    list_display = ("source", "last_written_at", "last_error")


@admin.register(CanaryBaseline)
class CanaryBaselineAdmin(admin.ModelAdmin):
    """Read-only: a baseline is accepted on the restore test page (audited), nowhere else."""

    list_display = ("source", "check_name", "value", "restore_test", "accepted_by", "accepted_at")
    list_select_related = ("source", "accepted_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from recovery.failover import admin as _failover_admin  # noqa: E402,F401
