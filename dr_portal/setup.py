"""Idempotent set-up run after every migrate: role permissions and system schedules."""

import importlib

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django_q.models import Schedule

from dr_portal.lib.queue import ensure_schedule
from dr_portal.lib.roles import MANAGER, OPERATOR, VIEWER

PORTAL_APPS = ["backups", "recovery", "drills", "incidents", "dr_portal"]

# Operators run things and write incidents; managers configure everything.
OPERATOR_MODELS = {
    "backuprun", "restoretest", "restore", "failoverrun", "steprun",
    "drillrun", "scenariorun", "checklistitem", "calloutack", "cleanupcheck", "finding",
    "drillevent", "followup", "incident", "timelineentry", "incidentlink",
}  # fmt: skip


SEED_MIGRATIONS = [
    ("dr_portal.migrations.0002_role_groups", "create_groups"),
    ("recovery.migrations.0001_initial", "seed_targets"),
    ("backups.migrations.0002_portal_db_source", "create_portal_source"),
]


def reseed():
    """Run the data migrations' seed functions again (each is idempotent)."""
    for module, function in SEED_MIGRATIONS:
        getattr(importlib.import_module(module), function)(apps, None)


def ensure_role_permissions(create_groups: bool = True):
    """Give the role groups their permissions (creating the groups unless told not to)."""
    if create_groups:
        for name in (VIEWER, OPERATOR, MANAGER):
            Group.objects.get_or_create(name=name)
    groups = {g.name: g for g in Group.objects.filter(name__in=(VIEWER, OPERATOR, MANAGER))}
    if len(groups) < 3:
        return
    viewer, operator, manager = groups[VIEWER], groups[OPERATOR], groups[MANAGER]
    perms = Permission.objects.filter(content_type__app_label__in=PORTAL_APPS).select_related(
        "content_type"
    )
    view = [p for p in perms if p.codename.startswith("view_")]
    run = [p for p in perms if p.content_type.model in OPERATOR_MODELS]
    viewer.permissions.set(view)
    operator.permissions.set({*view, *run})
    manager.permissions.set(perms)


def ensure_system_schedules():
    ensure_schedule(
        "system: reap runs whose worker died",
        "dr_portal.tasks.reap_lost_runs",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: recount dashboard storage and 3-2-1 copies",
        "dashboard.tasks.refresh_dashboard_figures",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: prune old task records",
        "dr_portal.tasks.prune_task_records",
        schedule_type=Schedule.DAILY,
    )
