"""Superusers see every API token and revoke any (someone left, a token leaked)."""

from django.contrib import admin, messages

from api.models import ApiToken
from dr_portal import audit


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "role", "created", "expires_at", "last_used_at"]
    list_filter = ["role", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username"]
    fields = ["prefix", "name", "user", "role", "created", "expires_at", "last_used_at"]
    fields += ["revoked_at", "revoked_by"]
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # created by their owner in the portal, shown once

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        done = 0
        for token in queryset:
            if token.revoke(by=request.user):
                audit.record("revoke API token", token, user=request.user, detail=token.prefix)
                done += 1
        messages.success(request, f"{done} token(s) revoked.")
