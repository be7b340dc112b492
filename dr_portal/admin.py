from django.contrib import admin

from dr_portal.models import AuditEntry, KeyEscrow, SsoIdentity

admin.site.site_header = "DR Portal configuration"
admin.site.site_title = "DR Portal"


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the trail is evidence, nobody edits it."""

    list_display = ("at", "actor_name", "source", "action", "object_type", "object_repr", "address")
    list_filter = ("action", "source", "object_type", "at")
    search_fields = ("actor_name", "object_repr", "object_id", "detail")
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(KeyEscrow)
class KeyEscrowAdmin(admin.ModelAdmin):
    list_display = ("key_id", "where", "confirmed_by", "confirmed_at")
    readonly_fields = ("confirmed_at",)


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Adding a row links an existing local account to an SSO identity (docs/sso.md)."""

    list_display = ("user", "subject", "issuer", "linked", "last_login")
    search_fields = ("user__username", "subject")
    readonly_fields = ("linked", "last_login")
    raw_id_fields = ("user",)

    def has_module_permission(self, request):
        return request.user.is_superuser

    has_view_permission = has_add_permission = has_change_permission = has_delete_permission = (
        lambda self, request, obj=None: request.user.is_superuser
    )
