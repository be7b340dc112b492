"""Portal pages of the backups app. Thin: long work is enqueued, never done here."""

from django.contrib import messages
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_q.models import Schedule
from django_q.tasks import async_task

from backups import archive, retention, services
from backups.forms import ArchiveRestoreForm, DestinationForm, JobForm, RunFilterForm, SourceForm
from backups.health import test_destination, test_source
from backups.models import (
    GOOD_STATUSES,
    BackupCopy,
    BackupJob,
    BackupRun,
    Destination,
    PitrWindow,
    Source,
)
from dr_portal import audit
from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration
from dr_portal.lib.roles import (
    MANAGER,
    OPERATOR,
    VIEWER,
    get_scoped,
    has_role,
    role_required,
    scope,
    system_role_required,
)
from dr_portal.runs import DONE
from dr_portal.templatetags.portal import filesize

RUN_LIST_FIELDS_DEFERRED = ("log", "manifest")
HISTORY = 50


def _jobs_with_last_run(user):
    last = BackupRun.objects.filter(job=OuterRef("pk")).order_by("-queued", "-pk")
    return (
        scope(BackupJob.objects, user, "source__system")
        .select_related("source", "locked_by_run")
        .prefetch_related("destinations")
        .annotate(
            last_run_id=Subquery(last.values("pk")[:1]),
            last_status=Subquery(last.values("status")[:1]),
            last_finished=Subquery(last.values("finished")[:1]),
            last_bytes=Subquery(last.values("bytes_stored")[:1]),
        )
        .order_by("name")
    )


def _newest_good_subquery():
    """Data time of the source's newest good backup that still has an intact copy (RPO now)."""
    return (
        BackupRun.objects.good()
        # Not null: newest first puts NULLs (failed runs) first, and the scan would step
        # over every failed run of the source before the first good one.
        .filter(source=OuterRef("pk"), data_taken_at__isnull=False)
        .order_by("-data_taken_at")
        .values("data_taken_at")[:1]
    )


@system_role_required()
def index(request):
    jobs = list(_jobs_with_last_run(request.user))
    sources = list(
        scope(Source.objects, request.user, "system")
        .select_related("system")
        .annotate(newest_good=Subquery(_newest_good_subquery()))
        .order_by("name")
    )
    now = timezone.now()
    targets = Source.rpo_targets()
    for source in sources:
        source.target = targets[source.data_class]
        source.rpo_now = now - source.newest_good if source.newest_good else None
        source.rpo_breached = source.rpo_now is None or source.rpo_now > source.target
    destinations = []  # shared by every system: shown to global roles only
    if has_role(request.user, VIEWER):
        # Counted from the live copies in one grouped read (partial index
        # backupcopy_live_idx), not as a filtered count over every copy ever made: 6 s at 2M.
        live = dict(
            BackupCopy.objects.live()
            .values("destination_id")
            .annotate(n=Count("pk"))
            .values_list("destination_id", "n")
            .order_by()
        )
        destinations = list(Destination.objects.order_by("name"))
        for destination in destinations:
            destination.live_copies = live.get(destination.pk, 0)
    recent = list(
        scope(BackupRun.objects, request.user, "source__system")
        .defer(*RUN_LIST_FIELDS_DEFERRED)
        .order_by("-queued", "-pk")[:15]
    )
    return render(
        request,
        "backups/index.html",
        {"jobs": jobs, "sources": sources, "destinations": destinations, "recent": recent},
    )


# --- sources -------------------------------------------------------------------
@system_role_required()
def source_list(request):
    sources = list(
        scope(Source.objects, request.user, "system")
        .select_related("system")
        .annotate(newest_good=Subquery(_newest_good_subquery()), job_count=Count("jobs"))
        .order_by("system__name", "name")
    )
    return render(request, "backups/source_list.html", {"sources": sources})


@system_role_required()
def source_detail(request, pk):
    source = get_scoped(Source.objects.select_related("system"), request.user, "system", pk=pk)
    jobs = source.jobs.prefetch_related("destinations").order_by("name")
    runs = source.runs.defer(*RUN_LIST_FIELDS_DEFERRED).order_by("-queued", "-pk")[:20]
    window = PitrWindow.objects.filter(source=source).first() if source.pitr else None
    return render(
        request,
        "backups/source_detail.html",
        {"source": source, "jobs": jobs, "runs": runs, "window": window},
    )


@require_POST
@system_role_required(OPERATOR)
def source_pitr_check(request, pk):
    """pitr_setup's check (stanza-create, archive a WAL segment and read it back) as a task:
    it can take minutes. The outcome is stored on the source and shown on its page."""
    source = get_scoped(Source.objects, request.user, "system", OPERATOR, pk=pk)
    if not source.pitr:
        messages.error(request, f"{source} does not have point-in-time recovery on.")
        return redirect(source)
    audit.record("check pitr archiving", source, user=request.user, detail="queued")
    transaction.on_commit(
        lambda: async_task(
            "backups.tasks.pitr_check_task",
            source.pk,
            group=f"pitr check {source.pk}",
            task_name=f"pitr check of source {source.pk}",
        )
    )
    messages.success(
        request,
        f"Archiving check of {source} queued: a WAL segment is archived and read back; "
        "reload this page in a minute for the result.",
    )
    return redirect(source)


def _edit(request, form_class, instance, template_name, what, **form_kwargs):
    form = form_class(request.POST or None, instance=instance, **form_kwargs)
    if request.method == "POST" and form.is_valid():
        obj = form.save()
        messages.success(request, f"{what} {obj} saved.")
        cleared = getattr(form, "cleared_message", lambda: "")()
        if cleared:
            messages.warning(request, cleared)
        return redirect(obj)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "backups/form.html",
        {"form": form, "object": instance, "what": what, "template_name": template_name},
        status=status,
    )


@system_role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def source_create(request):
    return _edit(request, SourceForm, None, "source", "Source", user=request.user)


@system_role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def source_edit(request, pk):
    source = get_scoped(Source.objects, request.user, "system", MANAGER, pk=pk)
    return _edit(request, SourceForm, source, "source", "Source", user=request.user)


@require_POST
@system_role_required(MANAGER)
def source_test(request, pk=None):
    """'Test connection' on the source form (htmx): the values as typed, not saved.

    A stored password is used only if the host, port, database and user are unchanged
    (SecretsMixin: a secret never follows a new endpoint). Answers a fragment."""
    instance = get_scoped(Source.objects, request.user, "system", MANAGER, pk=pk) if pk else None
    form = SourceForm(request.POST, instance=instance, user=request.user)
    if not form.is_valid():
        problems = "; ".join(
            f"{form.fields[name].label if name in form.fields else name}: {' '.join(errs)}"
            for name, errs in form.errors.items()
        )
        return render(
            request,
            "backups/_source_test.html",
            {"ok": False, "detail": f"fix the form first — {problems}"},
        )
    source = form.save(commit=False)
    for name in form.cleared_secrets:  # entered for the old endpoint: never sent to the new one
        setattr(source, name, "")
    ok, detail = test_source(source)
    audit.record(
        "test source connection",
        instance,
        user=request.user,
        detail=f"{source.name} ({source.kind}): {'ok' if ok else 'failed'}: {detail}"[:1000],
    )
    return render(request, "backups/_source_test.html", {"ok": ok, "detail": detail})


# --- destinations ----------------------------------------------------------------
def destination_list(request):
    destinations = list(
        Destination.objects.annotate(
            # Two joins (copies, jobs) multiply rows: both counts must be distinct.
            live_copies=Count(
                "copies",
                filter=Q(copies__ok=True, copies__deleted_at__isnull=True),
                distinct=True,
            ),
            job_count=Count("jobs", distinct=True),
        ).order_by("name")
    )
    return render(request, "backups/destination_list.html", {"destinations": destinations})


def destination_detail(request, pk):
    destination = get_object_or_404(Destination, pk=pk)
    copies = (
        BackupCopy.objects.filter(destination=destination, deleted_at__isnull=True)
        .select_related("run")
        .defer("run__log", "run__manifest")
        .order_by("-created")[:50]
    )
    if destination.kind == Destination.Kind.S3:  # archived copies show their restores
        copies = copies.prefetch_related("archive_restores")
    jobs = destination.jobs.select_related("source").order_by("name")
    # Same recorded site, or same endpoint and bucket (or path): one site for 3-2-1.
    candidates = Destination.objects.exclude(pk=destination.pk)
    same_site = [d.name for d in candidates.order_by("name") if d.same_site_as(destination)]
    return render(
        request,
        "backups/destination_detail.html",
        {
            "destination": destination,
            "copies": copies,
            "jobs": jobs,
            "same_site": same_site,
            "restore_form": ArchiveRestoreForm(),
        },
    )


@require_POST
@role_required(OPERATOR)
def copy_restore_archive(request, pk):
    """Ask the store for a temporary readable copy of an archived copy (backups.archive)."""
    copy = get_object_or_404(BackupCopy.objects.select_related("destination", "run"), pk=pk)
    form = ArchiveRestoreForm(request.POST)
    if not form.is_valid():
        problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        messages.error(request, f"No restore requested: {problems}")
        return redirect(copy.destination)
    try:
        row = archive.request(
            copy, form.cleaned_data["tier"], form.cleaned_data["days"], by=request.user.username
        )
    except archive.RestoreRefused as exc:
        messages.error(request, f"No restore requested: {exc}")
        return redirect(copy.destination)
    if row.state == row.State.FAILED:
        messages.error(request, f"The restore request for {copy.location} failed: {row.error}")
    else:
        messages.success(
            request,
            f"Restore of {copy.location} ({row.tier}, {row.days} days): {row.state}. The "
            "scrub reads it through once the store has made it available.",
        )
    return redirect(copy.destination)


@role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def destination_create(request):
    return _edit(request, DestinationForm, None, "destination", "Destination")


@role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def destination_edit(request, pk):
    return _edit(
        request,
        DestinationForm,
        get_object_or_404(Destination, pk=pk),
        "destination",
        "Destination",
    )


@require_POST
@role_required(OPERATOR)
def destination_test(request, pk):
    """What a backup does, on a throwaway object (backups.health.test_destination).

    Short timeouts, so it runs inline."""
    destination = get_object_or_404(Destination, pk=pk)
    ok, detail = test_destination(destination)
    if ok:
        messages.success(request, f"{destination}: {detail}.")
    else:
        messages.error(request, f"Test of {destination} failed: {detail}")
    audit.record(
        "test destination",
        destination,
        user=request.user,
        detail="ok" if ok else f"failed: {detail}",
    )
    return redirect(destination)


# --- jobs --------------------------------------------------------------------------
@system_role_required()
def job_list(request):
    jobs = list(_jobs_with_last_run(request.user))
    return render(request, "backups/job_list.html", {"jobs": jobs})


def _chart(runs):
    good = [r for r in runs if r.status in GOOD_STATUSES]
    if len(good) < 2:
        return "", ""
    good.reverse()
    size = line_chart(
        [("Stored size", [(r.finished, r.bytes_stored) for r in good])],
        y_format=filesize,
        title="Stored size per backup",
    )
    duration = line_chart(
        [("Duration", [(r.finished, (r.finished - r.started).total_seconds()) for r in good])],
        y_format=format_duration,
        title="Duration per backup",
    )
    return size, duration


RUNS_PER_PAGE = 50


def _anchor(pk):
    """(queued, id) of the run a page of the history starts from; None without one."""
    return BackupRun.objects.filter(pk=pk).values_list("queued", "pk").first() if pk else None


@require_http_methods(["GET"])
@system_role_required()
def run_list(request):
    """Every backup run, newest first, filtered by status, source, job and period.

    Paged by (queued, id) from the first or last run shown, not by offset and count:
    as fast on page 2,000 as on page 1 with a million runs.
    """
    form = RunFilterForm(request.GET or None, user=request.user)
    if form.is_bound and not form.is_valid():
        return render(request, "backups/run_list.html", {"form": form, "runs": []}, status=400)
    runs = scope(BackupRun.objects, request.user, "source__system").defer(*RUN_LIST_FIELDS_DEFERRED)
    before = after = None
    if form.is_bound:
        runs = form.filter(runs, timezone.now())
        before, after = _anchor(form.cleaned_data["before"]), _anchor(form.cleaned_data["after"])
    if after:
        at, pk = after
        # queued >= at: the bound PostgreSQL can start the index scan from; the OR alone is
        # a filter, read row by row from the newest run (500,000 rows halfway back a million).
        newer = runs.filter(Q(queued__gt=at) | Q(queued=at, pk__gt=pk), queued__gte=at)
        newer = newer.order_by("queued", "pk")
        page = list(newer[: RUNS_PER_PAGE + 1])
        has_newer, has_older = len(page) > RUNS_PER_PAGE, True
        page = page[:RUNS_PER_PAGE][::-1]
    else:
        if before:
            at, pk = before
            runs = runs.filter(Q(queued__lt=at) | Q(queued=at, pk__lt=pk), queued__lte=at)
        page = list(runs.order_by("-queued", "-pk")[: RUNS_PER_PAGE + 1])
        has_newer, has_older = before is not None, len(page) > RUNS_PER_PAGE
        page = page[:RUNS_PER_PAGE]
    query = request.GET.copy()
    for key in ("before", "after"):
        query.pop(key, None)
    return render(
        request,
        "backups/run_list.html",
        {
            "form": form,
            "runs": page,
            "query": query.urlencode(),
            "newer": page[0].pk if page and has_newer else None,
            "older": page[-1].pk if page and has_older else None,
        },
    )


@system_role_required()
def job_detail(request, pk):
    job = get_scoped(
        BackupJob.objects.select_related("source__system", "locked_by_run").prefetch_related(
            "destinations"
        ),
        request.user,
        "source__system",
        pk=pk,
    )
    runs = list(
        job.runs.defer(*RUN_LIST_FIELDS_DEFERRED)
        .prefetch_related(
            Prefetch("copies", queryset=BackupCopy.objects.select_related("destination"))
        )
        .order_by("-queued", "-pk")[:HISTORY]
    )
    size_chart, duration_chart = _chart(runs)

    schedule = Schedule.objects.filter(name=job.schedule_name).first()
    return render(
        request,
        "backups/job_detail.html",
        {
            "job": job,
            "runs": runs,
            "size_chart": size_chart,
            "duration_chart": duration_chart,
            "schedule": schedule,
            "active": next((r for r in runs if r.is_active), None),
        },
    )


@system_role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def job_create(request):
    return _edit(request, JobForm, None, "job", "Job", user=request.user)


@system_role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def job_edit(request, pk):
    job = get_scoped(BackupJob.objects, request.user, "source__system", MANAGER, pk=pk)
    return _edit(request, JobForm, job, "job", "Job", user=request.user)


@require_POST
@system_role_required(MANAGER)
def job_delete(request, pk):
    job = get_scoped(BackupJob.objects, request.user, "source__system", MANAGER, pk=pk)
    if job.active_run():
        messages.error(request, f"{job} is running; delete it when the run has finished.")
        return redirect(job)
    name = job.name
    job.delete()
    messages.success(request, f"Job {name} deleted; its run history is kept.")
    return redirect("backups:job_list")


@require_POST
@system_role_required(OPERATOR)
def job_run_now(request, pk):
    job = get_scoped(
        BackupJob.objects.select_related("source"), request.user, "source__system", OPERATOR, pk=pk
    )
    try:
        run = services.start_run(job, "manual", request.user)
    except services.JobBusy as exc:
        messages.warning(request, f"Not started: {exc}.")
        return redirect(job)
    audit.record("run backup", job, user=request.user, detail=f"run #{run.pk}")
    services.enqueue_run(run)
    messages.success(request, f"Backup run #{run.pk} of {job} queued.")
    return redirect(run)


# --- runs ----------------------------------------------------------------------------
def _run(request, pk):
    return get_scoped(
        BackupRun.objects.select_related("job", "source", "requested_by").prefetch_related(
            Prefetch(
                "copies",
                queryset=BackupCopy.objects.select_related("destination").order_by(
                    "destination__name"
                ),
            )
        ),
        request.user,
        "source__system",
        pk=pk,
    )


@system_role_required()
def run_detail(request, pk):
    run = _run(request, pk)
    return render(request, "backups/run_detail.html", {"run": run})


@require_POST
@system_role_required(OPERATOR)
def run_cancel(request, pk):
    run = get_scoped(BackupRun.objects, request.user, "source__system", OPERATOR, pk=pk)
    outcome = services.request_cancel(run, request.user)
    audit.record("cancel backup", run, user=request.user, detail=outcome)
    if outcome == "cancelled":
        messages.success(request, f"Run #{run.pk} cancelled before it started.")
    elif outcome == "requested":
        messages.success(request, f"Run #{run.pk}: the worker stops at its next progress report.")
    else:
        messages.warning(request, f"Run #{run.pk} had already finished.")
    return redirect(run)


@system_role_required()
def run_progress(request, pk):
    """htmx fragment polled every 2 s: all of the page that changes while the run runs
    (status, actions, manifest); 286 stops the polling once the run is done."""
    run = _run(request, pk)
    response = render(request, "backups/_run_live.html", {"run": run})
    if run.status in DONE:
        response.status_code = 286
    return response


# --- retention -------------------------------------------------------------------------
def retention_preview(request):
    rows = []
    now = timezone.now()
    for destination in Destination.objects.order_by("name"):
        try:
            decisions = retention.preview(destination, now=now)
            error = ""
        except Exception as exc:  # a broken hook or destination shows, not a 500
            decisions, error = [], f"{type(exc).__name__}: {exc}"
        rows.append(
            {
                "destination": destination,
                "decisions": decisions,
                "delete_count": sum(1 for d in decisions if d.delete),
                "error": error,
            }
        )
    return render(request, "backups/retention.html", {"rows": rows, "now": now})
