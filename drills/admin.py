from django.contrib import admin

from drills.models import (
    CalloutAck,
    ChecklistItem,
    CleanupCheck,
    DrillEvent,
    DrillPlan,
    DrillRun,
    Finding,
    Scenario,
    ScenarioRun,
    ScenarioSource,
)


class ScenarioInline(admin.StackedInline):
    model = Scenario
    extra = 0
    show_change_link = True


@admin.register(DrillPlan)
class DrillPlanAdmin(admin.ModelAdmin):
    list_display = ["name", "rule", "start_time", "time_zone", "time_budget", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    filter_horizontal = ["systems", "participants"]
    inlines = [ScenarioInline]


class ScenarioSourceInline(admin.TabularInline):
    model = ScenarioSource
    extra = 0


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ["title", "plan", "order", "kind", "failure_type"]
    list_filter = ["kind"]
    list_select_related = ["plan"]
    inlines = [ScenarioSourceInline]


@admin.register(ScenarioSource)
class ScenarioSourceAdmin(admin.ModelAdmin):
    list_display = ["source_name", "scenario", "source"]


class ScenarioRunInline(admin.TabularInline):
    model = ScenarioRun
    extra = 0
    fields = ["position", "title", "kind", "status", "started", "finished", "rto", "rpo"]
    readonly_fields = fields
    show_change_link = True


@admin.register(DrillRun)
class DrillRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "plan_name", "declared_at", "status", "verdict", "cleanup_state"]
    list_filter = ["status", "verdict"]
    date_hierarchy = "declared_at"
    readonly_fields = [
        "declared_at",
        "ended_at",
        "verdict",
        "verdict_reasons",
        "rto_achieved",
        "rpo_achieved",
    ]
    inlines = [ScenarioRunInline]


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    extra = 0


class CalloutAckInline(admin.TabularInline):
    model = CalloutAck
    extra = 0


@admin.register(ScenarioRun)
class ScenarioRunAdmin(admin.ModelAdmin):
    list_display = ["title", "drill", "kind", "status", "rto", "rpo"]
    list_filter = ["kind", "status"]
    raw_id_fields = ["restore_tests"]
    inlines = [ChecklistItemInline, CalloutAckInline]


@admin.register(ChecklistItem)
class ChecklistItemAdmin(admin.ModelAdmin):
    list_display = ["text", "scenario_run", "done_at", "done_by", "problem"]


@admin.register(CalloutAck)
class CalloutAckAdmin(admin.ModelAdmin):
    list_display = ["contact_name", "scenario_run", "notified_at", "acknowledged_at", "via"]


@admin.register(CleanupCheck)
class CleanupCheckAdmin(admin.ModelAdmin):
    list_display = ["resource", "drill", "gone", "removed", "checked_at"]


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ["text", "drill", "severity", "created_by", "created"]
    list_filter = ["severity"]


@admin.register(DrillEvent)
class DrillEventAdmin(admin.ModelAdmin):
    list_display = ["at", "drill", "actor_name", "text"]
    list_select_related = ["drill"]
