"""Portal pages of the recovery app. Thin: restore tests and restores are enqueued, never run here."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from backups.models import GOOD_STATUSES, BackupCopy, BackupRun, Destination, Source
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
from dr_portal.runs import DONE, RunStatus
from dr_portal.templatetags.portal import filesize
from recovery import (
    baselines,
    charts,
    check_trial,
    copies,
    readiness,
    restore_targets,
    restore_tests,
    restores,
    rotation,
    runner,
    targeting,
)
from recovery.forms import RestoreForm, RestoreTargetForm, TargetsForm
from recovery.models import (
    Restore,
    RestoreTarget,
    RestoreTest,
    RPOTarget,
    RTOTarget,
    ServiceLevel,
)
from recovery.targets import restore_rto_target

LIST_DEFERRED = ("log", "phases", "checks")
HISTORY = 50


def _filesize(num):
    return filesize(num)


@system_role_required()
def index(request):
    """Readiness of every source, the targets, the recent tests and restores.

    The dashboard's figures link here filtered: ?verdict=ok|at_risk|breached narrows the
    sources; ?tests=failed_or_partial&since=24h lists the restore tests behind the
    dashboard's failure count."""
    sources = list(
        scope(Source.objects, request.user, "system")
        .select_related("system")
        .order_by("system__name", "name")
    )
    ready = readiness.source_readiness(sources)
    verdict = request.GET.get("verdict", "")
    verdict = verdict if verdict in readiness.VERDICT_ORDER else ""
    rows = [(s, ready[s.pk]) for s in sources if not verdict or ready[s.pk].verdict == verdict]
    failed_only = request.GET.get("tests") == "failed_or_partial"
    return render(
        request,
        "recovery/index.html",
        {
            "rows": rows,
            "verdict": verdict,
            "failed_only": failed_only,
            "overall": readiness.overall(ready),
            "rto_targets": RTOTarget.objects.all(),
            "rpo_targets": RPOTarget.objects.all(),
            "sla": ServiceLevel.current(),
            "restore_rto_target": restore_rto_target(),
            "recent_tests": _listed_tests(
                request.user, failed_only, request.GET.get("since") == "24h"
            ),
            "recent_restores": list(
                scope(Restore.objects, request.user, "source__system")
                .select_related("source")
                .defer(*LIST_DEFERRED)
                .order_by("-queued", "-pk")[:10]
            ),
        },
    )


def _listed_tests(user, failed_only: bool, last_day: bool) -> list:
    tests = (
        scope(RestoreTest.objects, user, "source__system")
        .select_related("source")
        .defer(*LIST_DEFERRED)
    )
    if failed_only:
        tests = tests.filter(status__in=[RunStatus.FAILED, RunStatus.PARTIAL])
    if last_day:
        tests = tests.filter(finished__gte=timezone.now() - timedelta(hours=24))
    return list(tests.order_by("-queued", "-pk")[: 50 if failed_only else 15])


@role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def targets_edit(request):
    form = TargetsForm(
        request.POST or None,
        rto_targets=list(RTOTarget.objects.all()),
        rpo_targets=list(RPOTarget.objects.all()),
        sla=ServiceLevel.current(),
    )
    if request.method == "POST" and form.is_valid():
        changed = form.save()
        if changed:
            messages.success(request, "Saved: " + ", ".join(changed) + ".")
        else:
            messages.info(request, "Nothing changed.")
        return redirect("recovery:index")
    return render(request, "recovery/targets_form.html", {"form": form})


def restore_target_list(request):
    """Every role reads where restores may go; only managers change it."""
    rows = RestoreTarget.objects.prefetch_related("sources").order_by("name")
    return render(
        request,
        "recovery/restore_target_list.html",
        {"restore_targets": rows, "can_edit": has_role(request.user, MANAGER)},
    )


def _edit_restore_target(request, instance):
    form = RestoreTargetForm(request.POST or None, instance=instance, user=request.user)
    if request.method == "POST" and form.is_valid():
        target = form.save()  # audited by the model signal receivers
        messages.success(request, f"Restore target {target} saved.")
        if getattr(target, "password_cleared", False):
            messages.warning(
                request,
                f"The server of {target} changed: its stored password was cleared. "
                "Enter it again if the new server needs one.",
            )
        return redirect("recovery:restore_targets")
    return render(
        request,
        "recovery/restore_target_form.html",
        {"form": form, "object": instance},
        status=400 if request.method == "POST" else 200,
    )


@role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def restore_target_new(request):
    return _edit_restore_target(request, None)


@role_required(MANAGER)
@require_http_methods(["GET", "POST"])
def restore_target_edit(request, pk):
    return _edit_restore_target(request, get_object_or_404(RestoreTarget, pk=pk))


@role_required(MANAGER)
@require_POST
def restore_target_delete(request, pk):
    """Past restores keep where they went (their `target`); only the registration goes."""
    target = get_object_or_404(RestoreTarget, pk=pk)
    target.delete()  # audited by the model signal receivers
    messages.success(request, f"Restore target {target} deleted.")
    return redirect("recovery:restore_targets")


def _duration_chart(tests, restores, ready):
    """Measured restore-test and restore durations against the RTO target."""
    return line_chart(
        [
            (
                "Restore test duration",
                [
                    (t.finished, t.rto.total_seconds())
                    for t in reversed(tests)
                    if t.rto and t.finished and t.passed
                ],
            ),
            (
                "Restore duration",
                [
                    (r.finished, r.rto.total_seconds())
                    for r in reversed(restores)
                    if r.rto and r.finished
                ],
            ),
        ],
        target=ready.rto_target.total_seconds() if ready.rto_target else None,
        target_label="RTO target",
        y_format=format_duration,
        title="Restore duration against the RTO target",
    )


def _size_chart(backups, ready):
    """Stored backup sizes against the size the measured throughput restores in time."""
    # The size the measured throughput can restore within the target (the forecast's inverse).
    forecast_target_bytes = (
        ready.tested_bytes
        + (ready.rto_target - ready.last_rto).total_seconds() * ready.throughput_bps
        if ready.rto_target and ready.throughput_bps and ready.last_rto is not None
        else None
    )
    if forecast_target_bytes is not None and forecast_target_bytes <= 0:
        forecast_target_bytes = None  # the measured RTO alone already exceeds the target
    return line_chart(
        [
            (
                "Backup size (stored)",
                [(b.finished, b.bytes_stored) for b in reversed(backups) if b.finished],
            )
        ],
        target=forecast_target_bytes,
        target_label="restorable within the RTO target at the measured throughput:",
        y_format=_filesize,
        title="Backup size over time",
    )


def _rpo_chart(source, ready, now):
    """The RPO chart for this one source (one query): the RPO reached just before each good
    backup of its window, then the RPO now, against the data class's RPO target."""
    drawn = charts.rpo_charts([(source, ready)], now)
    if drawn:
        return drawn[0]["svg"]
    return line_chart([("RPO", [])], title=f"{source.name}: RPO, last {charts.RPO_CHART_DAYS} days")


@system_role_required()
def source_detail(request, source_id):
    source = get_scoped(
        Source.objects.select_related("system"), request.user, "system", pk=source_id
    )
    now = timezone.now()
    ready = readiness.source_readiness([source], now=now)[source.pk]
    tests = list(
        RestoreTest.objects.filter(source=source)
        .select_related("backup_run")
        .defer(*LIST_DEFERRED, "backup_run__log", "backup_run__manifest")
        .order_by("-queued", "-pk")[:HISTORY]
    )
    restores = list(
        Restore.objects.filter(source=source)
        .defer(*LIST_DEFERRED)
        .order_by("-queued", "-pk")[:HISTORY]
    )
    backups = list(
        BackupRun.objects.filter(source=source, status__in=GOOD_STATUSES)
        .only("pk", "finished", "bytes_stored", "data_taken_at")
        .order_by("-finished")[:HISTORY]
    )
    return render(
        request,
        "recovery/source_detail.html",
        {
            "source": source,
            "r": ready,
            "tests": tests,
            "restores": restores,
            "duration_chart": _duration_chart(tests, restores, ready),
            "size_chart": _size_chart(backups, ready),
            "rpo_chart": _rpo_chart(source, ready, now),
            "heartbeat": getattr(source, "heartbeat_state", None)
            if source.heartbeat_enabled
            else None,
            "copy_rows": _copy_rows(source, now),
            "copy_test_days": settings.DR_COPY_TEST_EVERY_DAYS,
        },
    )


def _copy_rows(source, now) -> list[dict]:
    """Each destination holding a live copy of a good backup of `source`, with when a passed
    restore test last read its copy there (the "Test now from …" buttons)."""
    good = BackupRun.objects.good().filter(source=source)
    held = BackupCopy.objects.live().filter(run__in=good).values("destination_id")
    proven = rotation.last_read(source, passed_only=True)
    days = settings.DR_COPY_TEST_EVERY_DAYS
    rows = []
    for destination in Destination.objects.filter(pk__in=held).order_by("name"):
        last = proven.get(destination.pk)
        rows.append(
            {
                "destination": destination,
                "last_proven": last,
                "overdue": bool(days) and (last is None or now - last > timedelta(days=days)),
            }
        )
    return rows


@system_role_required(OPERATOR)
@require_POST
def run_test(request, source_id):
    source = get_scoped(Source.objects, request.user, "system", OPERATOR, pk=source_id)
    backup_run = None
    if request.POST.get("backup_run"):
        # A button on a backup run's page tests that very backup.
        backup_run = get_object_or_404(
            BackupRun,
            pk=request.POST["backup_run"] if request.POST["backup_run"].isdigit() else 0,
            source=source,
        )
    destination = None
    asked = request.POST.get("destination", "")
    if asked:
        # "Test now from …": read only that destination's copy (as if the others were lost).
        destination = Destination.objects.filter(pk=int(asked) if asked.isdigit() else 0).first()
        if destination is None:
            messages.error(request, "That destination does not exist (any more): nothing queued.")
            return redirect("recovery:source_detail", source.pk)
    try:
        test = restore_tests.start_restore_test(
            source, backup_run=backup_run, user=request.user, destination=destination
        )
    except runner.Busy as exc:
        messages.warning(request, str(exc))
        return redirect("recovery:source_detail", source.pk)
    except restore_tests.NoCopyThere as exc:
        messages.error(request, f"{exc}: nothing queued.")
        return redirect("recovery:source_detail", source.pk)
    where = f" from {destination.name}" if destination else ""
    audit.record(
        "run restore test", source, user=request.user, detail=f"restore test #{test.pk}{where}"
    )
    restore_tests.enqueue_restore_test(test)
    messages.success(request, f"Restore test #{test.pk} of {source}{where} queued.")
    return redirect(test)


def _test(request, pk, role=VIEWER):
    return get_scoped(
        RestoreTest.objects.select_related(
            "source", "backup_run", "requested_by", "destination", "copy_destination"
        ),
        request.user,
        "source__system",
        role,
        pk=pk,
    )


def _test_context(request, test):
    acceptable = set()
    if test.status in DONE and has_role(request.user, MANAGER, test.source.system_id):
        acceptable = baselines.acceptable_checks(test)
    return {
        "test": test,
        "acceptable": acceptable,
        "accepted": list(test.accepted_baselines.select_related("accepted_by")),
    }


@require_POST
@system_role_required(MANAGER)
def try_checks(request, source_id):
    """'Try on the latest restore' on the source form (htmx): the typed checks, not saved."""
    source = get_scoped(Source.objects, request.user, "system", MANAGER, pk=source_id)
    trial = check_trial.try_checks(source, request.POST)
    audit.record("try verification checks", source, user=request.user, detail=trial.summary)
    return render(
        request,
        "recovery/_check_try.html",
        {
            "trial": trial,
            "source": source,
            "can_test": has_role(request.user, OPERATOR, source.system_id),
        },
    )


@system_role_required()
def test_detail(request, pk):
    test = _test(request, pk)
    return render(request, "recovery/test_detail.html", _test_context(request, test))


@require_POST
@system_role_required(MANAGER)
def accept_baseline(request, pk):
    """A failed data-loss canary: accept the observed value as the new baseline (audited)."""
    test = _test(request, pk, MANAGER)
    try:
        baselines.accept(
            test, request.POST.get("check", ""), request.user, request.POST.get("reason", "")
        )
    except baselines.BaselineRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "New baseline accepted: the next restore test compares with this value. "
            "The alert closes when that test passes.",
        )
    return redirect(test)


@system_role_required()
def test_progress(request, pk):
    """htmx fragment polled every 2 s; 286 stops the polling once the test is done."""
    test = _test(request, pk)
    response = render(request, "recovery/_test_progress.html", _test_context(request, test))
    if test.status in DONE:
        response.status_code = 286
    return response


@system_role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def restore_new(request, source_id):
    source = get_scoped(
        Source.objects.select_related("system"), request.user, "system", OPERATOR, pk=source_id
    )
    runs = list(
        copies.good_backups(source)
        .annotate(
            proven=Exists(
                RestoreTest.objects.filter(backup_run=OuterRef("pk"), status=RunStatus.SUCCEEDED)
            )
        )
        .only("pk", "data_taken_at", "bytes_stored")
        .order_by("-data_taken_at", "-pk")[:HISTORY]
    )
    can_overwrite = has_role(request.user, MANAGER, source.system_id)
    compatible = list(RestoreTarget.objects.compatible_with(source, targeting.source_kind(source)))
    proven = next((r for r in runs if r.proven), None)
    # A run page links here with ?backup_run=<id>; default: the newest proven backup.
    asked = request.GET.get("backup_run", "")
    chosen = next((r.pk for r in runs if asked.isdigit() and r.pk == int(asked)), None)
    form = RestoreForm(
        request.POST or None,
        source=source,
        runs=runs,
        can_overwrite=can_overwrite,
        targets=compatible,
        initial={"backup_run": chosen or (proven.pk if proven else None)},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        run = next((r for r in runs if r.pk == data["backup_run"]), None)
        try:
            restore = restores.start_restore(
                source,
                target=data.get("target", "").strip(),
                restore_target=data["restore_target"],
                database_name=data.get("database_name", "").strip(),
                onto_source=data["onto_source"],
                backup_run=BackupRun.objects.get(pk=run.pk) if run else None,
                failure_type=data["failure_type"],
                declared_at=data.get("declared_at"),
                overwrite=data["overwrite"],
                user=request.user,
            )
        except ValueError as exc:
            form.add_error("restore_target" if data["restore_target"] else "target", str(exc))
        except (runner.Busy, restore_targets.NotAllowed) as exc:
            form.add_error(None, str(exc))
        else:
            audit.record(
                "restore",
                source,
                user=request.user,
                detail=f"restore #{restore.pk} of run #{data['backup_run']} to {restore.target}"
                + restore_how(restore),
            )
            restores.enqueue_restore(restore)
            messages.success(request, f"Restore #{restore.pk} queued.")
            return redirect(restore)
    return render(
        request,
        "recovery/restore_form.html",
        {
            "source": source,
            "form": form,
            "can_overwrite": can_overwrite,
            "has_backups": bool(runs),
            "has_targets": bool(compatible),
            "runs": runs[:5],
        },
    )


def restore_how(restore: Restore) -> str:
    """How the target was chosen, for the audit line."""
    if restore.onto_source:
        return " (onto the source, confirmed by name)"
    if restore.restore_target_id:
        return f" (registered target {restore.restore_target.name})"
    return " (free-form target)"


def _restore(request, pk):
    return get_scoped(
        Restore.objects.select_related("source", "backup_run", "requested_by", "restore_target"),
        request.user,
        "source__system",
        pk=pk,
    )


@system_role_required()
def restore_detail(request, pk):
    return render(request, "recovery/restore_detail.html", {"restore": _restore(request, pk)})


@system_role_required()
def restore_progress(request, pk):
    restore = _restore(request, pk)
    response = render(request, "recovery/_restore_progress.html", {"restore": restore})
    if restore.status in DONE:
        response.status_code = 286
    return response
