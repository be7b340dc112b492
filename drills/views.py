"""Drill pages: plans (managers edit), drill runs (operators run), reports (everyone reads).

Thin views: actions call drills.services, long work is queued there. Every action is POST
only; a GET on an action URL redirects to the page it belongs to.
"""

from functools import wraps

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dr_portal import audit
from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration
from dr_portal.lib.roles import (
    MANAGER,
    OPERATOR,
    VIEWER,
    get_scoped,
    role_required,
    roles_on,
    scope,
    system_role_required,
    system_roles,
    user_roles,
    visible_systems,
)
from dr_portal.signed_reports import signed_pdf_response
from drills import coverage as coverage_grid
from drills import reports, services
from drills.callout import read_token
from drills.forms import FindingForm, FollowUpForm, PlanForm, ScenarioForm, TickForm
from drills.models import (
    CalloutAck,
    ChecklistItem,
    DrillPlan,
    DrillRun,
    DrillStatus,
    DrillTransitionError,
    Scenario,
    ScenarioRun,
    ScenarioStatus,
)


def post_only(redirect_to):
    """@require_POST, except that a GET redirects to the page the action belongs to."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method == "GET":
                return redirect(redirect_to(*args, **kwargs))
            return require_POST(view)(request, *args, **kwargs)

        return wrapped

    return decorator


def _plan_url(pk, *args, **kwargs):
    return reverse("drills:plan", args=[pk])


def _run_url(pk, *args, **kwargs):
    return reverse("drills:run", args=[pk])


# A plan's systems; a drill run has its plan's. A user with system roles sees a plan when
# they have the role on every one of its systems; a plan of no system needs a global role.
PLAN_SYSTEMS = "systems"
RUN_SYSTEMS = "plan__systems"


def _roles_here(user, systems) -> set[str]:
    """The roles the user holds on every one of a plan's `systems` (what its pages offer);
    `systems` is read only for a user with system roles."""
    if not system_roles(user):
        return user_roles(user)
    return roles_on(user, [system.pk for system in systems])


def _plan(request, pk, role=VIEWER, queryset=None):
    """The plan `pk`: 404 unless the user sees it, 403 without `role` on all its systems."""
    queryset = DrillPlan.objects if queryset is None else queryset
    return get_scoped(queryset, request.user, PLAN_SYSTEMS, role, many=True, pk=pk)


# --- plans ---------------------------------------------------------------------------


@system_role_required()
def index(request):
    user = request.user
    plans = list(
        scope(DrillPlan.objects, user, PLAN_SYSTEMS, many=True)
        .annotate(
            scenario_count=Count("scenarios", distinct=True), run_count=Count("runs", distinct=True)
        )
        .prefetch_related("systems")
    )
    now = timezone.now()
    for plan in plans:
        dates = plan.next_dates(1, now)
        plan.next_date = dates[0] if dates else None
        plan.overdue = plan.overdue_since(now)
    drills = scope(DrillRun.objects, user, RUN_SYSTEMS, many=True)
    runs = list(drills.select_related("plan")[:20])
    charts = reports.rto_charts(drills=None if visible_systems(user) is None else drills)
    return render(request, "drills/index.html", {"plans": plans, "runs": runs, "charts": charts})


@system_role_required()
def plan_detail(request, pk):
    plan = _plan(
        request,
        pk,
        queryset=DrillPlan.objects.prefetch_related(
            "systems",
            "participants",
            Prefetch(
                "scenarios", Scenario.objects.prefetch_related("source_links").order_by("order")
            ),
        ),
    )
    return render(
        request,
        "drills/plan_detail.html",
        {
            "plan": plan,
            "next_dates": plan.next_dates(6),
            "overdue": plan.overdue_since(),
            "problems": plan.problems(),
            "runs": plan.runs.all()[:20],
            "charts": _plan_charts(plan),
            "my_roles": _roles_here(request.user, plan.systems.all()),
        },
    )


PLAN_CHART_RUNS = 30  # the newest drills a plan's charts show


def _plan_charts(plan) -> dict:
    """RTO and RPO achieved by this plan's past drills against their targets (two queries)."""
    done = [DrillStatus.ENDED, DrillStatus.ABORTED]
    drills = list(
        DrillRun.objects.filter(plan=plan, status__in=done)
        .order_by("-declared_at", "-pk")
        .values("declared_at", "rto_achieved", "rpo_achieved", "rpo_target")[:PLAN_CHART_RUNS]
    )
    drills.reverse()

    def secs(value):
        return value.total_seconds() if value is not None else None

    rpo_target = next((d["rpo_target"] for d in reversed(drills) if d["rpo_target"]), None)
    rto = line_chart(
        [("Whole drill", [(d["declared_at"], secs(d["rto_achieved"])) for d in drills])],
        target=secs(plan.time_budget),
        target_label="time budget",
        y_format=format_duration,
        title="RTO achieved per drill (failure declared → last scenario recovered)",
    )
    rpo = line_chart(
        [("RPO achieved", [(d["declared_at"], secs(d["rpo_achieved"])) for d in drills])],
        target=secs(rpo_target),
        target_label="RPO target",
        y_format=format_duration,
        title="RPO achieved per drill (largest data age of what was restored)",
    )
    scenario_runs = (
        ScenarioRun.objects.filter(
            drill__plan=plan,
            drill__status__in=done,
            status__in=[ScenarioStatus.PASSED, ScenarioStatus.FAILED],
            rto__isnull=False,
        )
        .order_by("-drill__declared_at", "-drill_id", "position")
        .values("title", "drill__declared_at", "rto", "rto_target")[: PLAN_CHART_RUNS * 20]
    )
    groups: dict[str, dict] = {}
    for srun in scenario_runs:  # newest first: the first target seen is the current one
        group = groups.setdefault(srun["title"], {"points": [], "target": srun["rto_target"]})
        if len(group["points"]) < PLAN_CHART_RUNS:
            group["points"].append((srun["drill__declared_at"], srun["rto"].total_seconds()))
    per_scenario = [
        line_chart(
            [("RTO achieved", group["points"])],
            target=secs(group["target"]),
            target_label="RTO target",
            y_format=format_duration,
            title=f"{title}: RTO achieved vs target",
        )
        for title, group in groups.items()
    ]
    return {"rto": rto, "rpo": rpo, "per_scenario": per_scenario}


@system_role_required(MANAGER)
def plan_edit(request, pk=None):
    plan = _plan(request, pk, MANAGER) if pk else None
    form = PlanForm(request.POST or None, instance=plan, user=request.user)
    if request.method == "POST" and form.is_valid():
        plan = form.save()
        messages.success(request, f"Plan “{plan.name}” saved.")
        return redirect(plan)
    return render(request, "drills/plan_form.html", {"form": form, "plan": plan})


@system_role_required(MANAGER)
@post_only(_plan_url)
def plan_delete(request, pk):
    plan = _plan(request, pk, MANAGER)
    if plan.runs.exists():
        messages.error(
            request,
            f"“{plan.name}” has drill runs; their reports keep it. Disable the plan instead.",
        )
        return redirect(plan)
    plan.delete()
    messages.success(request, f"Plan “{plan.name}” deleted.")
    return redirect("drills:index")


@system_role_required(MANAGER)
def scenario_edit(request, plan_pk, pk=None):
    plan = _plan(request, plan_pk, MANAGER)
    scenario = get_object_or_404(Scenario, pk=pk, plan=plan) if pk else Scenario(plan=plan)
    if not pk:
        scenario.order = (
            plan.scenarios.order_by("-order").values_list("order", flat=True).first() or 0
        ) + 1
    form = ScenarioForm(request.POST or None, instance=scenario)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Scenario “{scenario.title}” saved.")
        return redirect(plan)
    return render(
        request, "drills/scenario_form.html", {"form": form, "plan": plan, "scenario": scenario}
    )


@system_role_required(MANAGER)
@post_only(_plan_url)
def scenario_delete(request, plan_pk, pk):
    scenario = get_scoped(
        Scenario.objects, request.user, "plan__systems", MANAGER, many=True, pk=pk, plan_id=plan_pk
    )
    scenario.delete()
    messages.success(request, f"Scenario “{scenario.title}” removed.")
    return redirect("drills:plan", plan_pk)


@system_role_required(MANAGER)
@post_only(_plan_url)
def scenario_move(request, plan_pk, pk):
    scenario = get_scoped(
        Scenario.objects, request.user, "plan__systems", MANAGER, many=True, pk=pk, plan_id=plan_pk
    )
    ordered = list(Scenario.objects.filter(plan_id=plan_pk).order_by("order", "pk"))
    index = ordered.index(scenario)
    other = index - 1 if request.POST.get("direction") == "up" else index + 1
    if 0 <= other < len(ordered):
        ordered[index], ordered[other] = ordered[other], ordered[index]
        for position, item in enumerate(ordered, 1):
            if item.order != position:
                item.order = position
                item.save(update_fields=["order"])
    return redirect("drills:plan", plan_pk)


@system_role_required(OPERATOR)
@post_only(_plan_url)
def plan_start(request, pk):
    plan = _plan(request, pk, OPERATOR)
    try:
        drill = services.start_drill(plan, request.user)
    except services.DrillRefused as exc:
        messages.error(request, f"The drill was not started. {exc}")
        return redirect(plan)
    messages.success(request, "Drill started: the failure is declared and the clock runs.")
    return redirect(drill)


# --- drill runs ------------------------------------------------------------------------


def _drill(request, pk, role=VIEWER):
    """The drill run `pk`: 404 unless the user sees it, 403 without `role` on its systems."""
    queryset = DrillRun.objects.select_related("plan", "started_by", "ended_by")
    return get_scoped(queryset, request.user, RUN_SYSTEMS, role, many=True, pk=pk)


def _live_context(drill, user):
    scenario_runs = list(
        drill.scenario_runs.prefetch_related(
            "items__done_by", "acks", "restore_tests", "systems"
        ).order_by("position")
    )
    return {
        "drill": drill,
        "scenario_runs": scenario_runs,
        "events": list(drill.events.select_related("scenario_run").order_by("-at", "-pk")[:200]),
        "cleanup_checks": list(drill.cleanup_checks.all()),
        "now": timezone.now(),
        "my_roles": _roles_here(user, drill.plan.systems.all()),
    }


@system_role_required()
def run_detail(request, pk):
    drill = services.sync(_drill(request, pk))
    context = _live_context(drill, request.user)
    context.update(
        {
            "findings": drill.findings.select_related("created_by", "scenario_run"),
            "followups": services.followups(drill),
            "finding_form": FindingForm(drill=drill),
            "followup_form": FollowUpForm(),
            "tick_form": TickForm(),
        }
    )
    return render(request, "drills/run_detail.html", context)


@system_role_required()
def run_live(request, pk):
    """The polled fragment: clock, scenarios, who did what. 286 stops polling once done."""
    drill = services.sync(_drill(request, pk))
    response = render(
        request, "drills/_live.html", _live_context(drill, request.user) | {"tick_form": TickForm()}
    )
    if not drill.is_active and drill.cleanup_state != "checking":
        response.status_code = 286
    return response


def _refuse(request, exc, drill):
    messages.error(request, str(exc))
    return redirect(drill)


@system_role_required(OPERATOR)
@post_only(_run_url)
def run_end(request, pk):
    drill = _drill(request, pk, OPERATOR)
    try:
        drill = services.end_drill(drill, request.user)
    except DrillTransitionError as exc:
        return _refuse(request, exc, drill)
    messages.success(request, f"Drill ended: {drill.get_verdict_display().lower()}.")
    return redirect(drill)


@system_role_required(OPERATOR)
@post_only(_run_url)
def run_abort(request, pk):
    drill = _drill(request, pk, OPERATOR)
    try:
        services.abort_drill(drill, request.user, reason=request.POST.get("reason", "")[:300])
    except DrillTransitionError as exc:
        return _refuse(request, exc, drill)
    messages.warning(request, "Drill aborted; what ran so far is kept.")
    return redirect(drill)


@system_role_required(OPERATOR)
@post_only(_run_url)
def run_cleanup(request, pk):
    drill = _drill(request, pk, OPERATOR)
    if drill.cleanup_state == "checking":
        messages.info(request, "A cleanup check is already queued.")
    else:
        services.request_cleanup_check(drill, request.user)
        messages.success(request, "Cleanup check queued.")
    return redirect(drill)


@system_role_required(OPERATOR)
@post_only(lambda pk, spk: reverse("drills:run", args=[pk]))
def scenario_complete(request, pk, spk):
    srun = get_scoped(
        ScenarioRun.objects.select_related("drill", "scenario"),
        request.user,
        "drill__plan__systems",
        OPERATOR,
        many=True,
        pk=spk,
        drill_id=pk,
    )
    try:
        services.complete_scenario(srun, request.user, note=request.POST.get("note", "")[:300])
    except DrillTransitionError as exc:
        return _refuse(request, exc, srun.drill)
    return redirect(srun.drill)


@system_role_required(OPERATOR)
@post_only(lambda pk, ipk: reverse("drills:run", args=[pk]))
def item_tick(request, pk, ipk):
    item = get_scoped(
        ChecklistItem.objects.select_related("scenario_run__drill"),
        request.user,
        "scenario_run__drill__plan__systems",
        OPERATOR,
        many=True,
        pk=ipk,
        scenario_run__drill_id=pk,
    )
    form = TickForm(request.POST)
    if not form.is_valid():
        return _refuse(
            request, "The note is too long (500 characters at most).", item.scenario_run.drill
        )
    try:
        services.tick_item(
            item, request.user, note=form.cleaned_data["note"], problem=form.cleaned_data["problem"]
        )
    except DrillTransitionError as exc:
        if request.headers.get("HX-Request"):
            return HttpResponse(str(exc), status=409)
        return _refuse(request, exc, item.scenario_run.drill)
    if request.headers.get("HX-Request"):
        drill = services.sync(_drill(request, pk))
        return render(
            request,
            "drills/_live.html",
            _live_context(drill, request.user) | {"tick_form": TickForm()},
        )
    return redirect("drills:run", pk)


@system_role_required(OPERATOR)
@post_only(lambda pk, apk: reverse("drills:run", args=[pk]))
def ack_tick(request, pk, apk):
    ack = get_scoped(
        CalloutAck.objects.select_related("scenario_run__drill"),
        request.user,
        "scenario_run__drill__plan__systems",
        OPERATOR,
        many=True,
        pk=apk,
        scenario_run__drill_id=pk,
    )
    if ack.scenario_run.drill.status != DrillStatus.RUNNING:
        return _refuse(
            request,
            "The drill has ended; acknowledgements can no longer change.",
            ack.scenario_run.drill,
        )
    if not services.acknowledge(ack, "portal", request.user):
        messages.info(request, f"{ack.contact_name} had already acknowledged.")
    return redirect("drills:run", pk)


def ack_link(request, token):
    """Public (the signed token is the credential): GET shows a button, POST records.

    A GET never acknowledges, so mail scanners that open links do not fake an answer.
    """
    ack = read_token(token)
    if ack is None:
        return render(request, "drills/ack.html", {"invalid": True}, status=404)
    done = False
    if request.method == "POST":
        done = services.acknowledge(
            ack, "link", request.user if request.user.is_authenticated else None
        )
        ack.refresh_from_db()
    return render(
        request, "drills/ack.html", {"ack": ack, "just_done": done, "drill": ack.scenario_run.drill}
    )


@system_role_required(OPERATOR)
@post_only(_run_url)
def finding_add(request, pk):
    drill = _drill(request, pk, OPERATOR)
    form = FindingForm(request.POST, drill=drill)
    if not form.is_valid():
        messages.error(request, "Describe the issue found.")
        return redirect(drill)
    try:
        services.add_finding(
            drill,
            form.cleaned_data["text"],
            request.user,
            form.cleaned_data["severity"],
            scenario_run=form.cleaned_data.get("scenario_run"),
        )
    except DrillTransitionError as exc:
        return _refuse(request, exc, drill)
    return redirect(drill)


@system_role_required(OPERATOR)
@post_only(_run_url)
def followup_add(request, pk):
    drill = _drill(request, pk, OPERATOR)
    form = FollowUpForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"The follow-up was not added ({errors}).")
        return redirect(drill)
    services.add_followup(
        drill,
        form.cleaned_data["text"],
        request.user,
        owner_contact=form.cleaned_data["owner"],
        due=form.cleaned_data["due"],
    )
    return redirect(drill)


# --- reports and coverage ------------------------------------------------------------------


@system_role_required()
def run_report(request, pk):
    drill = _drill(request, pk)
    return render(request, "drills/report.html", reports.report_context(drill))


@system_role_required()
def run_pdf(request, pk):
    drill = _drill(request, pk)
    audit.record("drill report pdf", drill, user=request.user)
    context = reports.report_context(drill) | {"pdf": True}
    return signed_pdf_response(
        "drills/report.html",
        context,
        f"drill-{drill.pk}-{drill.declared_at:%Y%m%d}.pdf",
        request=request,
        kind="drill",
        obj=drill,
    )


@role_required(VIEWER)
def coverage(request):
    types, rows = coverage_grid.build()
    return render(request, "drills/coverage.html", {"types": types, "rows": rows})
