"""Incidents, follow-ups, contacts and alerts: thin function-based views.

Viewers read; operators write incidents, timeline entries, follow-ups and links;
managers manage contacts, webhooks and the CSV import.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dr_portal import audit
from dr_portal.lib.roles import (
    MANAGER,
    OPERATOR,
    VIEWER,
    get_scoped,
    has_role_somewhere,
    role_required,
    scope,
    system_role_required,
)
from dr_portal.signed_reports import signed_pdf_response
from incidents import contacts_csv
from incidents.alerts import alert, recover, remind, silence, unsilence
from incidents.forms import (
    ContactForm,
    ContactImportForm,
    FollowUpForm,
    IncidentForm,
    LinkForm,
    MaintenanceWindowForm,
    SilenceForm,
    TimelineEntryForm,
    WebhookForm,
)
from incidents.links import describe
from incidents.models import (
    COMMON_ROLES,
    Alert,
    Contact,
    FollowUp,
    Incident,
    IncidentLink,
    IncidentStatus,
    MaintenanceWindow,
    Notification,
    TimelineEntry,
    Webhook,
    seed_order,
)
from incidents.report import human_duration, to_markdown
from incidents.scoping import (
    get_followup,
    get_incident,
    roles_here,
    scope_followups,
    scope_incidents,
)


def _incident(request, identifier, role=VIEWER) -> Incident:
    """404 unless the user sees the incident (incidents.scoping), 403 without `role`."""
    queryset = Incident.objects.select_related("created_by")
    return get_incident(queryset, request.user, role, identifier=identifier)


def _is_htmx(request):
    return request.headers.get("HX-Request") == "true"


# --- incidents ------------------------------------------------------------------------


@require_GET
@system_role_required()
def index(request):
    status = request.GET.get("status", "")
    ct = ContentType.objects.get_for_model(Incident)
    open_items = (
        FollowUp.objects.filter(content_type=ct, object_id=OuterRef("pk"), done=False)
        .order_by()
        .values("object_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    incidents = scope_incidents(Incident.objects, request.user).annotate(
        open_followups=Coalesce(Subquery(open_items), 0)
    )
    if status in IncidentStatus.values:
        incidents = incidents.filter(status=status)
    elif status == "active":
        incidents = incidents.filter(status__in=[IncidentStatus.OPEN, IncidentStatus.MITIGATED])
    overdue = scope_followups(FollowUp.objects.overdue(), request.user).count()
    open_alerts = Alert.objects.filter(recovered__isnull=True, event=False)
    return render(
        request,
        "incidents/index.html",
        {
            "incidents": incidents[:200],
            "status": status,
            "statuses": IncidentStatus.choices,
            "overdue_count": overdue,
            "open_alerts": scope(open_alerts, request.user, "system").count(),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def incident_new(request):
    form = IncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        incident = form.declare(request.user)
        messages.success(request, f"{incident.identifier} opened.")
        return redirect(incident)
    return render(request, "incidents/form.html", {"form": form, "incident": None})


@require_http_methods(["GET", "POST"])
@system_role_required(OPERATOR)
def incident_edit(request, identifier):
    incident = _incident(request, identifier, OPERATOR)
    old_status = incident.status
    form = IncidentForm(request.POST or None, instance=incident)
    if request.method == "POST" and form.is_valid():
        incident = form.save(commit=False)
        new_status, incident.status = incident.status, old_status
        if not incident.move_to(new_status, by=request.user):
            incident.save()  # the status did not change; the other fields did
        messages.success(request, f"{incident.identifier} saved.")
        return redirect(incident)
    return render(request, "incidents/form.html", {"form": form, "incident": incident})


@require_POST
@system_role_required(OPERATOR)
def incident_status(request, identifier):
    """One click during the incident: mitigated, resolved (now, unless set) or closed."""
    incident = _incident(request, identifier, OPERATOR)
    new = request.POST.get("status", "")
    if new not in IncidentStatus.values or new == incident.status:
        messages.error(request, "Pick a different status.")
        return redirect(incident)
    try:
        incident.move_to(new, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(m for msgs in exc.message_dict.values() for m in msgs))
        return redirect(incident)
    messages.success(request, f"{incident.identifier} is {incident.get_status_display().lower()}.")
    return redirect(incident)


def _detail_context(incident):
    timeline = list(incident.timeline.select_related("author").order_by("at", "pk"))
    followups = list(incident.followups().select_related("owner_contact", "owner_user"))
    links = list(incident.links.select_related("content_type"))
    for link in links:
        link.label = describe(link.target)
        link.url = (
            link.target.get_absolute_url() if hasattr(link.target, "get_absolute_url") else ""
        )
    return {
        "incident": incident,
        "timeline": timeline,
        "followups": followups,
        "overdue": [f for f in followups if f.is_overdue],
        "links": links,
        "duration_text": human_duration(incident.duration) if incident.resolved_at else "",
        "next_statuses": [
            (value, label) for value, label in IncidentStatus.choices if value != incident.status
        ],
    }


@require_GET
@system_role_required()
def incident_detail(request, identifier):
    incident = _incident(request, identifier)
    context = _detail_context(incident)
    context.update(
        timeline_form=TimelineEntryForm(),
        followup_form=FollowUpForm(),
        link_form=LinkForm(user=request.user),
        my_roles=roles_here(request.user, incident),
    )
    return render(request, "incidents/detail.html", context)


@require_POST
@system_role_required(OPERATOR)
def timeline_add(request, identifier):
    incident = _incident(request, identifier, OPERATOR)
    form = TimelineEntryForm(request.POST)
    if form.is_valid():
        entry = form.save(commit=False)
        entry.incident = incident
        entry.author = request.user
        entry.author_name = request.user.get_username()
        entry.save()
        form = TimelineEntryForm()
    elif not _is_htmx(request):
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    if not _is_htmx(request):
        return redirect(incident)
    timeline = incident.timeline.select_related("author").order_by("at", "pk")
    # htmx swaps only 2xx answers by default: errors come back as a 200 fragment showing them.
    return render(
        request,
        "incidents/_timeline.html",
        {"incident": incident, "timeline": timeline, "timeline_form": form},
    )


@require_POST
@system_role_required(OPERATOR)
def timeline_delete(request, identifier, pk):
    incident = _incident(request, identifier, OPERATOR)
    entry = get_object_or_404(TimelineEntry, pk=pk, incident=incident)
    if entry.automatic:
        messages.error(request, "Entries recorded by the portal stay in the timeline.")
    else:
        entry.delete()
        messages.success(request, "Timeline entry removed.")
    return redirect(incident)


@require_POST
@system_role_required(OPERATOR)
def followup_add(request, identifier):
    incident = _incident(request, identifier, OPERATOR)
    form = FollowUpForm(request.POST)
    if form.is_valid():
        item = form.save(commit=False)
        item.source = incident
        item.save()
        messages.success(request, "Follow-up added.")
    else:
        messages.error(request, "Follow-up not added: " + _errors(form))
    return redirect(incident.get_absolute_url() + "#followups")


@require_POST
@system_role_required(OPERATOR)
def followup_toggle(request, pk):
    item = get_followup(
        FollowUp.objects.select_related("content_type"), request.user, OPERATOR, pk=pk
    )
    item.done = not item.done
    item.done_at = timezone.now() if item.done else None
    item.save(update_fields=["done", "done_at"])
    if item.done:
        recover(item.alert_key())
    source = item.source
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    if source is not None and hasattr(source, "get_absolute_url"):
        return redirect(source.get_absolute_url() + "#followups")
    return redirect("incidents:followups")


@require_POST
@system_role_required(OPERATOR)
def link_add(request, identifier):
    incident = _incident(request, identifier, OPERATOR)
    form = LinkForm(request.POST, user=request.user)
    if form.is_valid():
        ct, object_id = form.cleaned_data["ct"], form.cleaned_data["object_id"]
        try:
            with transaction.atomic():
                link = IncidentLink.objects.create(
                    incident=incident,
                    content_type=ct,
                    object_id=object_id,
                    note=form.cleaned_data["note"],
                )
                status = getattr(link.target, "status", "")
                link.last_status = str(status or "")[:20]
                link.save(update_fields=["last_status"])
                TimelineEntry.objects.create(
                    incident=incident,
                    text=f"Linked {describe(link.target)}",
                    author=request.user,
                    author_name=request.user.get_username(),
                    automatic=True,
                )
            messages.success(request, f"Linked {describe(link.target)}.")
        except IntegrityError:
            messages.error(request, "That is linked already.")
    else:
        messages.error(request, "Not linked: " + _errors(form))
    return redirect(incident.get_absolute_url() + "#links")


@require_POST
@system_role_required(OPERATOR)
def link_remove(request, identifier, pk):
    incident = _incident(request, identifier, OPERATOR)
    get_object_or_404(IncidentLink, pk=pk, incident=incident).delete()
    messages.success(request, "Link removed.")
    return redirect(incident.get_absolute_url() + "#links")


def _errors(form) -> str:
    return " ".join(str(e) for errs in form.errors.values() for e in errs)


# --- reports ----------------------------------------------------------------------------


@require_GET
@system_role_required()
def incident_report(request, identifier):
    incident = _incident(request, identifier)
    return render(request, "incidents/report.html", _detail_context(incident))


@require_GET
@system_role_required()
def incident_pdf(request, identifier):
    incident = _incident(request, identifier)
    audit.record("export pdf", incident, user=request.user)
    return signed_pdf_response(
        "incidents/report_pdf.html",
        _detail_context(incident),
        f"{incident.identifier}.pdf",
        request=request,
        kind="incident",
        obj=incident,
    )


@require_GET
@system_role_required()
def incident_markdown(request, identifier):
    incident = _incident(request, identifier)
    ctx = _detail_context(incident)
    text = to_markdown(incident, ctx["timeline"], ctx["followups"])
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{incident.identifier}.md"'
    return response


# --- follow-ups across incidents and drills ---------------------------------------------


@require_GET
@system_role_required()
def followups(request):
    show = request.GET.get("show", "overdue")
    items = scope_followups(FollowUp.objects, request.user).select_related(
        "owner_contact", "owner_user", "content_type"
    )
    if show == "open":
        items = items.open()
    elif show == "all":
        pass
    else:
        show = "overdue"
        items = items.overdue()
    items = list(items[:500])
    _attach_sources(items)
    return render(request, "incidents/followups.html", {"items": items, "show": show})


def _attach_sources(items):
    """Load each item's incident or drill run with one query per kind, not one per item."""
    by_type = {}
    for item in items:
        by_type.setdefault(item.content_type_id, set()).add(item.object_id)
    objects = {}
    for ct_id, ids in by_type.items():
        model = ContentType.objects.get_for_id(ct_id).model_class()
        if model is None:
            continue
        for obj in model._default_manager.filter(pk__in=ids):
            objects[(ct_id, obj.pk)] = obj
    for item in items:
        obj = objects.get((item.content_type_id, item.object_id))
        item.source_obj = obj
        item.source_url = obj.get_absolute_url() if hasattr(obj, "get_absolute_url") else ""


# --- contacts -----------------------------------------------------------------------------


def _contacts_page(request, import_errors=(), status=200):
    return render(
        request,
        "incidents/contacts.html",
        {
            "contacts": seed_order(Contact.objects.all()),
            "webhooks": Webhook.objects.all(),
            "import_form": ContactImportForm(),
            "import_errors": import_errors,
            "columns": contacts_csv.COLUMNS,
        },
        status=status,
    )


@require_GET
@role_required(VIEWER)
def contacts(request):
    return _contacts_page(request)


@require_http_methods(["GET", "POST"])
@role_required(MANAGER)
def contact_edit(request, pk=None):
    contact = get_object_or_404(Contact, pk=pk) if pk else None
    form = ContactForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        contact = form.save()
        messages.success(request, f"Saved {contact.name}.")
        return redirect("incidents:contacts")
    return render(
        request,
        "incidents/contact_form.html",
        {"form": form, "contact": contact, "roles": COMMON_ROLES},
    )


@require_POST
@role_required(MANAGER)
def contact_delete(request, pk):
    contact = get_object_or_404(Contact, pk=pk)
    contact.delete()
    messages.success(request, f"Removed {contact.name}.")
    return redirect("incidents:contacts")


@require_GET
@role_required(VIEWER)
def contacts_export(request):
    response = HttpResponse(
        contacts_csv.export_csv(Contact.objects.all()), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="contacts.csv"'
    return response


@require_POST
@role_required(MANAGER)
def contacts_import(request):
    form = ContactImportForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose a CSV file to import.")
        return redirect("incidents:contacts")
    result = contacts_csv.import_csv(form.cleaned_data["file"].read())
    if not result.ok:
        return _contacts_page(request, result.errors, status=400)
    audit.record(
        "import contacts",
        user=request.user,
        detail=f"{result.created} created, {result.updated} updated; "
        + "; ".join(result.moved_slots),
    )
    messages.success(request, f"Imported: {result.created} new, {result.updated} updated.")
    for moved in result.moved_slots:
        messages.info(request, f"On-call moved: {moved}")
    return redirect("incidents:contacts")


@require_http_methods(["GET", "POST"])
@role_required(MANAGER)
def webhook_new(request):
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        hook = form.save()
        messages.success(request, f"Webhook {hook.name} added.")
        return redirect("incidents:contacts")
    return render(request, "incidents/webhook_form.html", {"form": form})


@require_POST
@role_required(MANAGER)
def webhook_delete(request, pk):
    hook = get_object_or_404(Webhook, pk=pk)
    hook.delete()
    messages.success(request, f"Webhook {hook.name} removed.")
    return redirect("incidents:contacts")


# --- alerts and notifications ---------------------------------------------------------------


@require_GET
@system_role_required()
def alerts(request):
    # A user with system roles only sees the alerts of their systems (an alert of no
    # system, like a failed sweep or a test notification, needs a global role).
    seen = scope(Alert.objects, request.user, "system")
    open_alerts = seen.filter(recovered__isnull=True, event=False).select_related(
        "system", "silenced_by"
    )
    recent = seen.filter(Q(recovered__isnull=False) | Q(event=True))[:50]
    notifications = scope(Notification.objects, request.user, "alert__system").select_related(
        "alert"
    )[:100]
    no_recipients = not (
        Contact.objects.exclude(on_call="").exclude(email="").exists()
        or Webhook.objects.filter(active=True).exists()
    )
    return render(
        request,
        "incidents/alerts.html",
        {
            "open_alerts": open_alerts,
            "recent": recent,
            "notifications": notifications,
            "no_recipients": no_recipients,
            "silence_form": SilenceForm(),
            "repeat": timedelta(seconds=settings.DR_ALERT_REPEAT_S),
            "in_maintenance": set(
                MaintenanceWindow.objects.active_at(timezone.now()).values_list(
                    "system_id", flat=True
                )
            ),
        },
    )


@require_POST
@system_role_required(OPERATOR)
def alert_silence(request, pk):
    """Acknowledge (until it recovers) or snooze (until a time) an open alert; audited."""
    obj = get_scoped(
        Alert.objects, request.user, "system", OPERATOR, pk=pk, recovered__isnull=True, event=False
    )
    form = SilenceForm(request.POST)
    if not form.is_valid():
        messages.error(request, _errors(form))
        return redirect("incidents:alerts")
    until = form.until()
    silence(obj, request.user, form.cleaned_data["reason"], until)
    action = "snooze alert" if until else "acknowledge alert"
    shown = f"until {until:%Y-%m-%d %H:%M} UTC" if until else "until it recovers"
    audit.record(
        action,
        obj,
        user=request.user,
        detail=f"{obj.key}, {shown}: {form.cleaned_data['reason']}",
    )
    verb = "Snoozed" if until else "Acknowledged"
    messages.success(request, f"{verb} {shown}: no reminders meanwhile, unless it gets worse.")
    return redirect("incidents:alerts")


@require_POST
@system_role_required(OPERATOR)
def alert_unsilence(request, pk):
    obj = get_scoped(
        Alert.objects, request.user, "system", OPERATOR, pk=pk, recovered__isnull=True, event=False
    )
    unsilence(obj)
    audit.record("unsnooze alert", obj, user=request.user, detail=obj.key)
    messages.success(request, "Reminders are on again for this alert.")
    return redirect("incidents:alerts")


@require_http_methods(["GET", "POST"])
@system_role_required()
def maintenance(request):
    """Maintenance windows: current and upcoming, the last ten past; operators add them
    (an operator of some systems only, on those: the form offers no other)."""
    form = None
    if has_role_somewhere(request.user, OPERATOR):
        form = MaintenanceWindowForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if form is None:
            return HttpResponse(status=403)
        if form.is_valid():
            window = form.save(commit=False)
            window.created_by = request.user
            window.save()
            audit.record(
                "add maintenance window",
                window,
                user=request.user,
                detail=f"{window.starts:%Y-%m-%d %H:%M}–{window.ends:%Y-%m-%d %H:%M}: "
                f"{window.reason}",
            )
            messages.success(request, f"{window} added: its alerts are recorded, not sent.")
            return redirect("incidents:maintenance")
    now = timezone.now()
    windows = scope(MaintenanceWindow.objects, request.user, "system").select_related(
        "system", "created_by"
    )
    return render(
        request,
        "incidents/maintenance.html",
        {
            "form": form,
            "now": now,
            "current": windows.filter(ends__gt=now),
            "past": windows.filter(ends__lte=now).order_by("-ends")[:10],
        },
        status=400 if form is not None and form.errors else 200,
    )


@require_POST
@system_role_required(OPERATOR)
def maintenance_end(request, pk):
    """End a window now (one that has not started yet is removed)."""
    window = get_scoped(
        MaintenanceWindow.objects.select_related("system"), request.user, "system", OPERATOR, pk=pk
    )
    now = timezone.now()
    if window.ends <= now:
        messages.info(request, "That window is already over.")
    elif window.starts > now:
        audit.record("remove maintenance window", window, user=request.user, detail=window.reason)
        window.delete()
        messages.success(request, "The planned window was removed.")
    else:
        MaintenanceWindow.objects.filter(pk=window.pk).update(ends=now)
        audit.record("end maintenance window", window, user=request.user, detail=window.reason)
        remind(now)  # what the window held goes out now, not at the next minute's sweep
        messages.success(
            request, "Maintenance ended: alerts of the system that are still open go out now."
        )
    return redirect("incidents:maintenance")


@require_POST
@role_required(MANAGER)
def send_test(request):
    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    alert(
        f"test:{stamp}",
        "test",
        "Test notification from DR Portal",
        detail=f"Sent by {request.user.get_username()} to check email and webhook delivery.",
        url="/incidents/alerts/",
    )
    audit.record("send test notification", user=request.user)
    messages.success(request, "Test notification queued; its delivery shows below.")
    return redirect("incidents:alerts")
