"""Incident links to runs of other apps (generic, so apps built later link too).

A finished run writes a RunEvent; incidents.events calls note_run_transition(run) for it:
every incident linked to that run gets an automatic timeline entry.
"""

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from dr_portal.lib.durations import format_duration
from dr_portal.lib.roles import OPERATOR
from dr_portal.runs import run_models
from incidents import scoping
from incidents.models import IncidentLink, TimelineEntry

# Models an incident can link to besides runs: (app_label, model_name). By name, because
# drills sits above incidents. Any RunBase subclass is linkable too, so new run models
# need no change here.
EXTRA_LINKABLE = [("drills", "drillrun"), ("recovery", "runbook")]


def linkable_models():
    found = set(run_models())
    found.update(apps.get_model(app_label, name) for app_label, name in EXTRA_LINKABLE)
    return sorted(found, key=lambda m: (m._meta.app_label, m._meta.verbose_name))


def linkable_choices():
    """(content type id, "Backups · backup run") for the link form."""
    models = linkable_models()
    types = ContentType.objects.get_for_models(*models) if models else {}
    return [
        (types[m].pk, f"{m._meta.app_config.verbose_name} · {m._meta.verbose_name}") for m in models
    ]


RECENT = 15  # per kind in the link picker; an older one is linked by its number
_SHOWN_RELATIONS = ("source", "runbook", "system", "job", "plan")  # what the names read
_WHEN = ("declared_at", "queued", "started", "created")


def _recent(model, user=None):
    names = {f.name for f in model._meta.get_fields()}
    rows = model._default_manager if user is None else scoping.targets(model, user, OPERATOR)
    qs = rows.order_by("-pk")
    related = [n for n in _SHOWN_RELATIONS if n in names and model._meta.get_field(n).many_to_one]
    if related:
        qs = qs.select_related(*related)
    if "log" in names:
        qs = qs.defer("log")
    return list(qs[:RECENT])


def _picker_label(obj) -> str:
    parts = [describe(obj)]
    if hasattr(obj, "get_status_display"):
        parts.append(obj.get_status_display().lower())
    when = next((getattr(obj, n) for n in _WHEN if getattr(obj, n, None)), None)
    if when is not None:
        parts.append(f"{timezone.localtime(when):%Y-%m-%d %H:%M}")
    return " · ".join(parts)


def recent_choices(user=None):
    """Grouped choices for the link picker: the newest runs, tests, failovers… of each kind,
    as ("<content type id>:<pk>", label). One query per kind. `user`: only those on the
    systems they operate (a user with system roles only)."""
    models = linkable_models()
    types = ContentType.objects.get_for_models(*models) if models else {}
    groups = []
    for model in models:
        rows = [(f"{types[model].pk}:{obj.pk}", _picker_label(obj)) for obj in _recent(model, user)]
        if rows:
            kind = f"{model._meta.app_config.verbose_name} · {model._meta.verbose_name}"
            groups.append((kind, rows))
    return groups


def describe(obj) -> str:
    if obj is None:
        return "(deleted)"
    name = str(obj)
    if f"#{obj.pk}" in name:
        return name
    return f"{obj._meta.verbose_name} #{obj.pk}: {name}"


def note_run_transition(run) -> int:
    """Add a timeline entry to each incident linked to `run`; return how many.

    Raises on failure: the run-event consumer logs it and retries the event.
    """
    ct = ContentType.objects.get_for_model(type(run))
    links = list(IncidentLink.objects.filter(content_type=ct, object_id=run.pk))
    if not links:
        return 0
    status = str(getattr(run, "status", "") or "")
    label = getattr(run, "get_status_display", lambda: status)()
    at = getattr(run, "finished", None) or timezone.now()
    name = str(run)
    if f"#{run.pk}" not in name:  # a __str__ without the number: say which run it was
        name = f"{run._meta.verbose_name} #{run.pk} ({name})"
    text = f"{name[:1].upper()}{name[1:]} finished: {label}"
    duration = getattr(run, "duration", None)
    if duration is not None:
        text += f" after {format_duration(duration)}"
    error = getattr(run, "error", "")
    if error:
        text += f" — {error.splitlines()[0][:300]}"
    with transaction.atomic():
        for link in links:
            TimelineEntry.objects.create(
                incident_id=link.incident_id,
                at=at,
                text=text,
                author_name="DR Portal",
                automatic=True,
            )
            IncidentLink.objects.filter(pk=link.pk).update(last_status=status[:20])
    return len(links)
