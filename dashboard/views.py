"""Dashboard views: the dashboard and its htmx fragment, /metrics, the compliance page and PDF.

Roles: every logged-in role sees the dashboard and the compliance page (it is the same
evidence the portal shows elsewhere); the PDF — the signed-off document handed to an
auditor — needs the manager role. /metrics is not behind the login: it checks its own
bearer token or address allow-list (dashboard.metrics).
"""

from datetime import timedelta

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from backups.models import System
from dashboard import board, compliance, metrics
from dr_portal import audit, signed_reports
from dr_portal.lib.roles import (
    MANAGER,
    VIEWER,
    scope,
    system_role_required,
    visible_systems,
)
from dr_portal.models import KeyEscrow
from dr_portal.widgets import DatePicker

MAX_PERIOD = timedelta(days=3 * 366)


@system_role_required()
def dashboard(request):
    context = {
        "unescrowed_keys": KeyEscrow.unconfirmed_key_ids(),
        **board.build(user=request.user),
    }
    return render(request, "dashboard/dashboard.html", context)


@require_GET
@never_cache
@system_role_required()
def dashboard_fragment(request):
    """The refreshable part of the dashboard (htmx polls it every 30 s)."""
    context = board.build(charts=False, user=request.user)
    return render(request, "dashboard/_readiness.html", context)


@require_GET
@never_cache
@system_role_required()
def banners(request):
    """The worker and destination banners alone: every open page re-reads them (htmx every
    DR_BANNER_POLL_S), so a worker that stops while a page is open shows up on it."""
    return render(request, "dashboard/_banners.html")


@require_GET
@never_cache
def metrics_view(request):
    refused = metrics.check_access(request)
    if refused:
        response = HttpResponse(
            "metrics need a bearer token or an allowed address\n"
            if refused == 401
            else "metrics are not enabled: set DR_METRICS_TOKEN or DR_METRICS_ALLOW\n",
            status=refused,
            content_type="text/plain; charset=utf-8",
        )
        if refused == 401:
            response["WWW-Authenticate"] = 'Bearer realm="dr-portal metrics"'
        return response
    return HttpResponse(metrics.collect(), content_type=metrics.CONTENT_TYPE)


# --- compliance ----------------------------------------------------------------------------


class ComplianceForm(forms.Form):
    date_from = forms.DateField(label="From", widget=DatePicker())
    date_to = forms.DateField(label="To", widget=DatePicker())
    systems = forms.ModelMultipleChoiceField(queryset=None, required=False)

    def __init__(self, *args, user=None, role=VIEWER, **kwargs):
        super().__init__(*args, **kwargs)
        # A user with roles on some systems only chooses among those (none chosen: all of them).
        systems = System.objects.order_by("name")
        self.fields["systems"].queryset = scope(systems, user, "pk", role) if user else systems

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                raise forms.ValidationError("The period ends before it starts.")
            if end - start > MAX_PERIOD:
                raise forms.ValidationError("Choose a period of at most three years.")
        return data


def _form(request, role=VIEWER):
    user = request.user
    if "date_from" in request.GET or "date_to" in request.GET:
        return ComplianceForm(request.GET, user=user, role=role)
    today = timezone.localdate()
    initial = {"date_from": today - timedelta(days=89), "date_to": today}
    return ComplianceForm(initial=initial, user=user, role=role)


def _report(request, form, role):
    start, end = compliance.period(form.cleaned_data["date_from"], form.cleaned_data["date_to"])
    systems = list(form.cleaned_data["systems"])
    if not systems and visible_systems(request.user, role) is not None:
        systems = list(form.fields["systems"].queryset)  # "all" of a system-scoped user: theirs
    return compliance.build(start, end, systems)


def _stamp(request, data, role):
    produced = compliance.stamp(data, request.user.get_username())
    produced["limited_to_roles"] = visible_systems(request.user, role) is not None
    return produced


@require_GET
@system_role_required(VIEWER)
def compliance_page(request):
    form = _form(request)
    context = {"form": form}
    if form.is_bound and form.is_valid():
        data = _report(request, form, VIEWER)
        context.update(
            r=data,
            produced=_stamp(request, data, VIEWER),
            query=request.GET.urlencode(),
        )
    return render(request, "dashboard/compliance.html", context)


@require_GET
@system_role_required(MANAGER)
def compliance_pdf(request):
    form = _form(request, MANAGER)
    if not (form.is_bound and form.is_valid()):
        return render(request, "dashboard/compliance.html", {"form": form}, status=400)
    data = _report(request, form, MANAGER)
    produced = _stamp(request, data, MANAGER)
    pdf = compliance.render_pdf(data, produced, base_url=request.build_absolute_uri("/"))
    audit.record(
        "export compliance pdf",
        None,
        user=request.user,
        detail=f"{data['period']['from']} – {data['period']['to']} "
        f"({', '.join(data['systems'])}) sha256 {produced['sha256']}",
    )
    name = f"compliance-{form.cleaned_data['date_from']}-{form.cleaned_data['date_to']}.pdf"
    report = signed_reports.sign_and_register(
        pdf, kind="compliance", filename=name, user_name=request.user.get_username()
    )
    response = signed_reports.response(pdf, report)
    response["X-Report-SHA256"] = produced["sha256"]
    return response
