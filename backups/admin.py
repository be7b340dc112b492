"""Admin screens. Secrets are write-only: a blank password input keeps the stored value."""

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.utils import timezone

from backups.forms import (
    AdoptedStanzaMixin,
    ArchiveTimeoutMixin,
    DestinationForm,
    JobForm,
    SecretField,
    SecretsMixin,
    SourceForm,
)
from backups.models import (
    BackupCopy,
    BackupJob,
    BackupRun,
    Destination,
    PitrWindow,
    Source,
    System,
    SystemRole,
)


class SourceAdminForm(AdoptedStanzaMixin, ArchiveTimeoutMixin, SecretsMixin, forms.ModelForm):
    """The admin edits exclude patterns and checks as JSON, unlike the portal's form."""

    SECRET_FIELDS = {"new_password": "password", "new_pitr_cipher_pass": "pitr_cipher_pass"}
    new_password = SecretField(label="Password")
    new_pitr_cipher_pass = SecretField(label="Adopted repository passphrase")

    class Meta:
        model = Source
        fields = [*SourceForm.Meta.fields, "is_portal_db"]


class ClearedSecretsMessage:
    """Tells the admin user when a changed endpoint cleared a stored secret."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        cleared = form.cleared_message() if hasattr(form, "cleared_message") else ""
        if cleared:
            self.message_user(request, cleared, messages.WARNING)


class SystemRoleInline(admin.TabularInline):
    model = SystemRole
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(System)
class SystemAdmin(admin.ModelAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]
    inlines = [SystemRoleInline]


@admin.register(SystemRole)
class SystemRoleAdmin(admin.ModelAdmin):
    """Roles per system (dr_portal.lib.roles); saves and deletes are audited like any row."""

    list_display = ["user", "system", "role"]
    list_filter = ["role", "system"]
    search_fields = ["user__username", "system__name"]
    autocomplete_fields = ["user", "system"]


@admin.register(Source)
class SourceAdmin(ClearedSecretsMessage, admin.ModelAdmin):
    form = SourceAdminForm
    list_display = [
        "name",
        "system",
        "kind",
        "data_class",
        "pitr",
        "is_portal_db",
        "heartbeat_enabled",
    ]
    list_filter = ["kind", "data_class", "pitr", "system"]
    search_fields = ["name"]
    readonly_fields = ["pitr_key_id", "config_changed_at", "created"]
    list_select_related = ["system"]


@admin.register(Destination)
class DestinationAdmin(ClearedSecretsMessage, admin.ModelAdmin):
    form = DestinationForm
    list_display = ["name", "kind", "storage_class", "keep_days", "keep_last", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "bucket", "path"]


class BackupJobAdminForm(JobForm):
    """The portal's job form in the admin: the same fields, rules and audit."""

    class Meta(JobForm.Meta):
        widgets = {}  # the admin's own (filter_horizontal for destinations)


@admin.register(BackupJob)
class BackupJobAdmin(admin.ModelAdmin):
    form = BackupJobAdminForm
    list_display = [
        "name",
        "source",
        "method",
        "backup_type",
        "schedule",
        "timezone",
        "compression",
        "encrypt",
        "enabled",
    ]
    list_filter = ["enabled", "method", "compression"]
    search_fields = ["name"]
    filter_horizontal = ["destinations"]
    readonly_fields = ["config_changed_at", "created", "locked_by_run"]
    list_select_related = ["source"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # The saving user decides whether command hooks may change (JobHooksMixin).
        return type(form.__name__, (form,), {"user": request.user})

    def delete_queryset(self, request, queryset):
        for job in queryset:  # one by one, so each job's schedule goes with it
            job.delete()


class BackupCopyInline(admin.TabularInline):
    model = BackupCopy
    extra = 0
    can_delete = False
    readonly_fields = [
        "destination",
        "location",
        "manifest_location",
        "bytes_stored",
        "storage_class",
        "ok",
        "error",
        "created",
        "deleted_at",
        "deleted_reason",
        "locked_until",
    ]


class LockedCopiesGuard:
    """A copy under S3 Object Lock cannot be deleted before its date, not even from its
    catalog: the portal refuses (with the date) instead of forgetting a copy that stays."""

    def _locked(self, obj):
        copies = [obj] if isinstance(obj, BackupCopy) else obj.copies.all()
        now = timezone.now()
        return [c for c in copies if c.locked(now)]

    def _refusal(self, obj, locked) -> str:
        newest = max(c.locked_until for c in locked)
        return (
            f"{obj} is immutable until {newest:%Y-%m-%d %H:%M} UTC (S3 Object Lock at "
            f"{', '.join(sorted({c.destination.name for c in locked}))}): it cannot be deleted "
            "before then, by the portal or by anyone holding its key."
        )

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        locked = self._locked(obj) if obj is not None else []
        if locked:
            self.message_user(request, self._refusal(obj, locked), messages.ERROR)
            return redirect(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", obj.pk)
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            locked = self._locked(obj)
            if locked:
                self.message_user(request, self._refusal(obj, locked), messages.ERROR)
            else:
                obj.delete()


@admin.register(BackupRun)
class BackupRunAdmin(LockedCopiesGuard, admin.ModelAdmin):
    list_display = ["pk", "job_name", "source_name", "status", "trigger", "queued", "bytes_stored"]
    list_filter = ["status", "trigger", "restorable"]
    search_fields = ["job_name", "source_name", "sha256"]
    inlines = [BackupCopyInline]
    list_select_related = True
    # Runs are written by workers; the admin may only mark one not restorable.
    readonly_fields = [
        "job",
        "job_name",
        "source",
        "source_name",
        "trigger",
        "status",
        "queued",
        "started",
        "finished",
        "error",
        "log",
        "phase",
        "worker",
        "heartbeat_at",
        "requested_by",
        "artifact_key",
        "bytes_read",
        "bytes_stored",
        "compression_ratio",
        "sha256",
        "data_taken_at",
        "manifest",
        "anomalies",
        "task_id",
        "ping_outcome",
        "hook_outcome",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(BackupCopy)
class BackupCopyAdmin(LockedCopiesGuard, admin.ModelAdmin):
    list_display = ["run", "destination", "location", "bytes_stored", "ok", "deleted_at"]
    list_filter = ["destination", "ok"]
    list_select_related = ["run", "destination"]
    readonly_fields = [f.name for f in BackupCopy._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(PitrWindow)
class PitrWindowAdmin(admin.ModelAdmin):
    """Read-only: the window is what pgBackRest's repository shows, refreshed by a task."""

    list_display = ["source", "oldest", "newest", "newest_segment", "missing_segment", "checked_at"]
    list_select_related = ["source"]
    readonly_fields = [
        "source",
        "oldest",
        "newest",
        "newest_segment",
        "gap_after",
        "missing_segment",
        "checked_at",
        "error",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
