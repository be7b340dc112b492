"""Runbook pages, starting runs, live progress, manual confirmation, cancel, printable run."""

from collections import Counter

from django.contrib import messages
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from dr_portal import audit
from dr_portal.lib.roles import (
    MANAGER,
    OPERATOR,
    VIEWER,
    get_scoped,
    require_role,
    role_required,
    scope,
    system_role_required,
)
from dr_portal.runs import RunStatus
from recovery.failover import lag
from recovery.failover.builtin import TEMPLATES, create_from_template
from recovery.failover.forms import RunbookForm, StartRunForm, StepForm, TemplateForm
from recovery.failover.models import (
    EXERCISED,
    FailoverRun,
    LiveRunExists,
    Runbook,
    RunbookStep,
    RunMode,
    StepRun,
)
from recovery.failover.steps import KINDS, superuser_only

STOP_POLLING = 286  # htmx stops polling on this status


def _runbook(request, pk, role=VIEWER) -> Runbook:
    return get_scoped(Runbook.objects.select_related("system"), request.user, "system", role, pk=pk)


def _run(request, pk, role=VIEWER) -> FailoverRun:
    return get_scoped(
        FailoverRun.objects.select_related("runbook", "system", "requested_by").defer("log"),
        request.user,
        "system",
        role,
        pk=pk,
    )


# Writing runbooks stays with global managers: a step can reach any host, another
# system's too. Reading and running them follows the role on the runbook's system.
@system_role_required(VIEWER)
def runbook_list(request):
    passed = FailoverRun.objects.filter(
        runbook=OuterRef("pk"), status=RunStatus.SUCCEEDED, config_hash=OuterRef("config_hash")
    )
    rehearsal = passed.exclude(EXERCISED).order_by("-finished")
    runbooks = (
        scope(Runbook.objects, request.user, "system")
        .select_related("system")
        .annotate(
            step_count=Count("steps"),
            verified_runs=Exists(passed.filter(EXERCISED)),
            rehearsal_effects=Subquery(rehearsal.values("skipped_effects")[:1]),
            rehearsal_unproven=Subquery(rehearsal.values("unproven_checks")[:1]),
        )
        .order_by("system__name", "name")
    )
    recent = scope(FailoverRun.objects, request.user, "system")
    recent = recent.select_related("runbook", "system").defer("log")[:10]
    return render(
        request,
        "recovery/failover/runbook_list.html",
        {"runbooks": runbooks, "recent": recent, "templates": TEMPLATES.values()},
    )


@system_role_required(VIEWER)
def runbook_detail(request, pk):
    runbook = _runbook(request, pk)
    steps = runbook.steps.filter(rollback_of__isnull=True).prefetch_related(
        Prefetch("rollback_steps", queryset=RunbookStep.objects.order_by("order", "pk"))
    )
    runs = runbook.runs.select_related("requested_by").defer("log")[:10]
    return render(
        request,
        "recovery/failover/runbook_detail.html",
        {
            "runbook": runbook,
            "steps": steps,
            "runs": runs,
            "verifying_run": runbook.last_verifying_run(),
            "rehearsal": runbook.last_rehearsal(),
            "kinds": KINDS,
            "has_standby": any(s.kind == "pg_promote" for s in steps),
            "lag_sample": lag.newest(runbook),
            "lag_chart": lag.chart(runbook),
        },
    )


@role_required(MANAGER)
def runbook_create(request):
    form = RunbookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        runbook = form.save()
        runbook.refresh_config()
        messages.success(request, f"Runbook {runbook.name} created; add its steps.")
        return redirect(runbook)
    return render(request, "recovery/failover/runbook_form.html", {"form": form})


@role_required(MANAGER)
def runbook_edit(request, pk):
    runbook = _runbook(request, pk)
    form = RunbookForm(request.POST or None, instance=runbook)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Runbook saved.")
        return redirect(runbook)
    return render(
        request, "recovery/failover/runbook_form.html", {"form": form, "runbook": runbook}
    )


@role_required(MANAGER)
def runbook_from_template(request):
    form = TemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        runbook = create_from_template(
            form.cleaned_data["system"],
            form.cleaned_data["template"],
            name=form.cleaned_data["name"],
        )
        audit.record(
            "create from template",
            runbook,
            user=request.user,
            detail=f"template {runbook.template}",
        )
        messages.success(
            request,
            "Runbook created from the template. Edit the hosts, URLs and "
            "secrets of its steps, then test it.",
        )
        return redirect(runbook)
    return render(
        request,
        "recovery/failover/template_form.html",
        {"form": form, "templates": TEMPLATES.values()},
    )


@role_required(MANAGER)
def step_edit(request, pk, step_pk=None):
    runbook = _runbook(request, pk)
    step = get_object_or_404(RunbookStep, pk=step_pk, runbook=runbook) if step_pk else None
    form = StepForm(request.POST or None, instance=step, runbook=runbook, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Step {form.instance.name} saved.")
        if form.secret_dropped:
            messages.warning(
                request,
                f"The address of step {form.instance.name} changed, so its stored secret was "
                "removed. Enter the secret again if the new address needs it.",
            )
        return redirect(runbook)
    return render(
        request,
        "recovery/failover/step_form.html",
        {"form": form, "runbook": runbook, "step": step, "kinds": KINDS},
    )


@require_POST
@role_required(MANAGER)
def step_delete(request, pk, step_pk):
    runbook = _runbook(request, pk)
    step = get_object_or_404(RunbookStep, pk=step_pk, runbook=runbook)
    if superuser_only(step.kind, step.params, step.test_params) and not request.user.is_superuser:
        messages.error(request, f"Only superusers may create or edit {step.kind} steps.")
        return redirect(runbook)
    step.delete()
    runbook.refresh_config()
    messages.success(request, f"Step {step.name} deleted.")
    return redirect(runbook)


@system_role_required(OPERATOR)
def start_run(request, pk):
    runbook = _runbook(request, pk, OPERATOR)
    form = StartRunForm(request.POST or None, runbook=runbook, user=request.user)
    if request.method == "POST" and form.is_valid():
        if not runbook.steps.exists():
            messages.error(request, "This runbook has no steps yet.")
            return redirect(runbook)
        mode = form.cleaned_data["mode"]
        try:
            run = FailoverRun.start(
                runbook, mode, request.user, declared_at=form.cleaned_data.get("declared_at")
            )
        except LiveRunExists as exc:
            form.add_error(None, str(exc))
        else:
            audit.record(
                f"start {mode} failover", runbook, user=request.user, detail=f"run #{run.pk}"
            )
            return redirect(run)
    return render(request, "recovery/failover/start_run.html", {"form": form, "runbook": runbook})


def _run_context(run):
    step_runs = list(run.step_runs.select_related("confirmed_by"))
    counts = Counter(s.status for s in step_runs)
    # Steps that really ran; skipped (test mode), not run and cancelled ones are said apart.
    ran = sum(
        counts[s]
        for s in (
            StepRun.Status.SUCCEEDED,
            StepRun.Status.FAILED,
            StepRun.Status.TIMED_OUT,
            StepRun.Status.UNPROVEN,
        )
    )
    return {
        "run": run,
        # the standby's lag as last sampled before the failure was declared
        "lag_before": lag.newest(run.runbook, before=run.declared_at),
        "step_runs": step_runs,
        "ran_count": ran,
        "total": len(step_runs),
        "skipped_count": counts[StepRun.Status.SKIPPED],
        "not_run_count": counts[StepRun.Status.NOT_RUN] + counts[StepRun.Status.CANCELLED],
    }


@system_role_required(VIEWER)
def run_detail(request, pk):
    run = _run(request, pk)
    return render(request, "recovery/failover/run_detail.html", _run_context(run))


@system_role_required(VIEWER)
def run_progress(request, pk):
    run = _run(request, pk)
    response = render(request, "recovery/failover/_run_progress.html", _run_context(run))
    if not run.is_active:
        response.status_code = STOP_POLLING
    return response


@system_role_required(VIEWER)
def run_print(request, pk):
    run = get_scoped(
        FailoverRun.objects.select_related("runbook", "system", "requested_by"),
        request.user,
        "system",
        pk=pk,
    )
    return render(
        request,
        "recovery/failover/run_print.html",
        {**_run_context(run), "printed": timezone.now()},
    )


@require_POST
@system_role_required(OPERATOR)
def run_cancel(request, pk):
    run = _run(request, pk, OPERATOR)
    if run.mode == RunMode.LIVE:
        require_role(request.user, MANAGER, run.system_id)
    outcome = run.request_cancel(request.user)
    if outcome == "done":
        messages.warning(request, f"The run is already {run.get_status_display().lower()}.")
    else:
        audit.record("cancel failover", run, user=request.user, detail=outcome)
        messages.success(
            request,
            "Run cancelled."
            if outcome == "cancelled"
            else "Cancel requested: the worker stops at the next step and runs the rollbacks.",
        )
    return redirect(run)


@require_POST
@system_role_required(OPERATOR)
def step_confirm(request, pk, step_run_pk):
    run = _run(request, pk, OPERATOR)
    step_run = get_object_or_404(StepRun, pk=step_run_pk, run=run, kind="manual")
    # Conditional: only a step that is waiting, and only once.
    updated = StepRun.objects.filter(
        pk=step_run.pk, status=StepRun.Status.WAITING, confirmed_at__isnull=True
    ).update(confirmed_by=request.user, confirmed_at=timezone.now())
    if updated:
        audit.record("confirm failover step", run, user=request.user, detail=step_run.name)
        messages.success(request, f"Confirmed: {step_run.name}.")
    else:
        messages.warning(request, "This step is not waiting for a confirmation.")
    if request.headers.get("HX-Request"):
        return run_progress(request, pk)
    return redirect(run)
