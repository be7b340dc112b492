from django.contrib import admin

from recovery.models import HeartbeatState, Restore, RestoreTest, RPOTarget, RTOTarget, ServiceLevel


@admin.register(RTOTarget)
class RTOTargetAdmin(admin.ModelAdmin):
    list_display = ("failure_type", "target", "notes", "updated")


@admin.register(RPOTarget)
class RPOTargetAdmin(admin.ModelAdmin):
    list_display = ("data_class", "target", "notes", "updated")


@admin.register(ServiceLevel)
class ServiceLevelAdmin(admin.ModelAdmin):
    list_display = ("availability_percent", "rto", "rpo", "updated")


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


from recovery.failover import admin as _failover_admin  # noqa: E402,F401
