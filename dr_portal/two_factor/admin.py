"""Superusers see who has two-factor sign-in and reset it (lost phone); keys never shown.

django-otp's own TOTP admin shows each key and its QR code: it is replaced by this one."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django_otp.plugins.otp_totp.models import TOTPDevice

from dr_portal.two_factor import services
from dr_portal.two_factor.models import AuthenticatorApp

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(AuthenticatorApp)
class TwoFactorAdmin(admin.ModelAdmin):
    """Read-only list of authenticator apps; the one action resets a user's second factor."""

    list_display = ("user", "confirmed", "created_at", "last_used_at", "throttling_failure_count")
    list_filter = ("confirmed",)
    search_fields = ("user__username",)
    fields = list_display
    readonly_fields = list_display
    actions = ["reset_two_factor"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a bare delete would skip the audit entry and leave recovery codes

    @admin.action(description="Reset two-factor sign-in (the user enrols again)")
    def reset_two_factor(self, request, queryset):
        if not request.user.is_superuser:
            messages.error(request, "Only a superuser can reset two-factor sign-in.")
            return
        users = get_user_model().objects.filter(pk__in=queryset.values("user_id"))
        done = [u.get_username() for u in users if services.reset(u, by=request.user.username)]
        messages.success(request, f"Two-factor sign-in reset for: {', '.join(done) or 'nobody'}.")
