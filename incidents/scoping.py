"""What a user with roles on some systems only sees of incidents and follow-ups.

An incident has no system of its own: its systems are those of what it links to (a backup
run, restore, restore test, failover run or runbook by its system, a drill run by its
plan's). Such a user sees an incident that has at least one link, every one of them on a
system they hold the role on; an incident linked to nothing (or to something of no system,
or deleted) needs a global role, like any object of no system (dr_portal.lib.roles).
Follow-ups follow their incident or drill run. Users with a global role see everything;
then nothing here adds a query.
"""

from functools import reduce
from operator import or_

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404

from dr_portal.lib import roles
from incidents.models import Incident, IncidentLink

# Where each linkable model's system is: (path, multi-valued). By name: drills sits above
# incidents. A model not listed belongs to no system (a link to it: global roles only).
SYSTEM_PATHS = {
    "backups.BackupRun": ("source__system", False),
    "recovery.Restore": ("source__system", False),
    "recovery.RestoreTest": ("source__system", False),
    "recovery.FailoverRun": ("system", False),
    "recovery.Runbook": ("system", False),
    "drills.DrillRun": ("plan__systems", True),
}


def scoped(user) -> bool:
    """True when `user` is limited to some systems (no global viewer role)."""
    return roles.visible_systems(user) is not None


def targets(model, user, role=roles.VIEWER):
    """The rows of a linkable `model` the user has `role` on (none for a model of no system)."""
    label = model._meta.label
    if label not in SYSTEM_PATHS:
        return model._default_manager.none()
    path, many = SYSTEM_PATHS[label]
    return roles.scope(model._default_manager.all(), user, path, role, many)


def _visible_links(user, role) -> Q:
    """The IncidentLink rows whose target the user has `role` on."""
    parts = []
    for label in SYSTEM_PATHS:
        model = apps.get_model(label)
        ct = ContentType.objects.get_for_model(model)
        parts.append(Q(content_type=ct, object_id__in=targets(model, user, role).values("pk")))
    return reduce(or_, parts)


def scope_incidents(queryset, user, role=roles.VIEWER):
    """`queryset` narrowed to the incidents whose every linked object is on a system the
    user has `role` on (and that link to something); unchanged for a global `role`."""
    if roles.visible_systems(user, role) is None:
        return queryset
    visible = _visible_links(user, role)
    some = IncidentLink.objects.filter(visible).values("incident_id")
    other = IncidentLink.objects.exclude(visible).values("incident_id")
    return queryset.filter(pk__in=some).exclude(pk__in=other)


def get_incident(queryset, user, role=roles.VIEWER, **lookup) -> Incident:
    """The incident `lookup` finds: 404 unless the user sees it (its existence is not
    told), 403 if they see it but lack `role` on one of its systems."""
    incident = get_object_or_404(scope_incidents(queryset, user), **lookup)
    if role != roles.VIEWER and roles.visible_systems(user, role) is not None:
        if not scope_incidents(Incident.objects.filter(pk=incident.pk), user, role).exists():
            raise PermissionDenied(f"This needs the {role} role on this incident's systems.")
    return incident


def roles_here(user, incident) -> set[str]:
    """The roles the user holds on every system of `incident` (what its page offers); a
    query per role only for a user with system roles."""
    if not roles.system_roles(user):
        return roles.user_roles(user)
    one = Incident.objects.filter(pk=incident.pk)
    return {role for role in roles.ORDER if scope_incidents(one, user, role).exists()}


def scope_followups(queryset, user, role=roles.VIEWER):
    """Follow-ups of the incidents and drill runs the user has `role` on."""
    if roles.visible_systems(user, role) is None:
        return queryset
    drill_run = apps.get_model("drills.DrillRun")
    incidents = scope_incidents(Incident.objects.all(), user, role).values("pk")
    drills = targets(drill_run, user, role).values("pk")
    return queryset.filter(
        Q(content_type=ContentType.objects.get_for_model(Incident), object_id__in=incidents)
        | Q(content_type=ContentType.objects.get_for_model(drill_run), object_id__in=drills)
    )


def get_followup(queryset, user, role=roles.VIEWER, **lookup):
    """The follow-up `lookup` finds: 404 unless the user sees it, 403 without `role`."""
    item = get_object_or_404(scope_followups(queryset, user), **lookup)
    if role != roles.VIEWER and roles.visible_systems(user, role) is not None:
        model = queryset.model
        if not scope_followups(model.objects.filter(pk=item.pk), user, role).exists():
            raise PermissionDenied(f"This needs the {role} role on its systems.")
    return item
