from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline

from incidents.forms import ContactForm, WebhookForm
from incidents.models import (
    Alert,
    Contact,
    DeliveryAttempt,
    FollowUp,
    Incident,
    IncidentLink,
    IncidentSequence,
    MaintenanceWindow,
    Notification,
    TimelineEntry,
    Webhook,
)


class TimelineInline(admin.TabularInline):
    model = TimelineEntry
    extra = 0
    fields = ["at", "text", "author_name", "automatic"]


class LinkInline(admin.TabularInline):
    model = IncidentLink
    extra = 0
    fields = ["content_type", "object_id", "note", "last_status"]


class FollowUpInline(GenericTabularInline):
    model = FollowUp
    extra = 0
    fields = ["text", "owner_contact", "owner_user", "due", "done"]


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["identifier", "title", "severity", "status", "detected_at", "resolved_at"]
    list_filter = ["status", "severity"]
    search_fields = ["identifier", "title", "summary"]
    readonly_fields = ["identifier", "year", "number", "created", "updated"]
    inlines = [TimelineInline, FollowUpInline, LinkInline]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["incident", "at", "text", "author_name", "automatic"]
    list_select_related = ["incident"]
    search_fields = ["text", "incident__identifier"]


@admin.register(FollowUp)
class FollowUpAdmin(admin.ModelAdmin):
    list_display = [
        "text",
        "content_type",
        "object_id",
        "owner_contact",
        "owner_user",
        "due",
        "done",
    ]
    list_filter = ["done", "content_type"]
    search_fields = ["text"]


@admin.register(IncidentLink)
class IncidentLinkAdmin(admin.ModelAdmin):
    list_display = ["incident", "content_type", "object_id", "last_status", "note"]
    list_select_related = ["incident", "content_type"]


@admin.register(IncidentSequence)
class IncidentSequenceAdmin(admin.ModelAdmin):
    list_display = ["year", "last"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactForm
    list_display = ["role", "name", "on_call", "phone", "email"]
    list_filter = ["role", "on_call"]
    search_fields = ["name", "email", "role"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["name", "kind", "active"]


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    readonly_fields = ["at", "ok", "detail"]
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "created",
        "channel",
        "recipient",
        "subject",
        "status",
        "attempts",
        "last_error",
    ]
    list_filter = ["status", "channel", "message"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [AttemptInline]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["opened", "kind", "key", "title", "seen_count", "recovered", "event"]
    list_filter = ["kind", "event"]
    search_fields = ["key", "title"]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ["at", "notification", "ok", "detail"]
    list_select_related = ["notification"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    list_display = ("system", "starts", "ends", "reason", "created_by")
    list_select_related = ("system", "created_by")
    raw_id_fields = ("created_by",)
