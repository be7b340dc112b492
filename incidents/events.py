"""The one consumer of run events: what follows a run's start or end.

A run's transition (dr_portal.runs.RunBase, a drill's end) only writes a RunEvent row in
its own transaction. process_events() turns each event into its consequences:

- anomalies: a finished backup run is compared with its job's history (backups.anomalies);
- backup alerts: a failed or partial backup raises its alert, a good one clears it, and so
  do the anomaly warnings;
- restore test alerts: a failed restore test raises, a passed one clears;
- failover alerts: every failover sends one event alert when it starts and one when it ends;
- timeline: each incident linked to the run gets an automatic entry.

Why here: incidents is the highest layer these consequences need. Alerts and timeline
entries live in this app, backups and recovery sit below it, and drills needs only the
generic timeline entry (found through the content type). So one module dispatches every
event without a registry, and no lower layer imports a higher one.

Delivery: the transition enqueues this task after its commit; a minute schedule
("system: process run events") runs it as a safety net for a lost enqueue or a retry.
Each event is claimed with a conditional update, so two consumers never handle one event.
A failing handler is logged with the event id, its error kept on the event, and the event
stays pending for the next pass; handlers that already succeeded are not run again. After
MAX_ATTEMPTS the event is given up: processed, with its error kept.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backups import anomalies
from backups.models import BackupRun
from dr_portal.lib.durations import format_duration
from dr_portal.models import RunEvent
from dr_portal.runs import RunStatus
from incidents import alerts
from incidents.links import note_run_transition
from recovery.failover.models import FailoverRun
from recovery.models import RestoreTest

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A consumer that died holding an event loses it to the next pass after this long.
CLAIM_TIMEOUT = timedelta(minutes=5)
BATCH = 500

FINISHED = RunEvent.Transition.FINISHED


# --- handlers: (event, run) -> None; raise to have the event retried ---------------------------
def detect_anomalies(event, run):
    if run.status != RunStatus.CANCELLED:
        anomalies.detect(run)


def backup_alerts(event, run):
    """One alert per condition (failed/partial, then unusual) until a good run clears it."""
    if run.status == RunStatus.CANCELLED:
        return
    name = run.job_name or run.source_name
    url = run.get_absolute_url()
    key = f"backup:{run.job_id or run.source_name}"
    if run.status == RunStatus.FAILED:
        alerts.alert(key, "backup_failed", f"Backup {name} failed", run.error, url, strict=True)
    elif run.status == RunStatus.PARTIAL:
        title = f"Backup {name} partly failed"
        alerts.alert(key, "backup_partial", title, run.error, url, strict=True)
    else:
        alerts.recover(key, f"Backup {name} succeeded again", strict=True)
    anomaly_key = f"backup-anomaly:{run.job_id or run.source_name}"
    warnings = [a for a in run.anomalies or [] if a.get("kind") != "repeated_failures"]
    if warnings:
        detail = "; ".join(a["message"] for a in warnings)
        title = f"Backup {name} looks unusual"
        alerts.alert(anomaly_key, "backup_anomaly", title, detail, url, strict=True)
    elif run.status == RunStatus.SUCCEEDED:
        alerts.recover(anomaly_key, f"Backup {name} looks normal again", strict=True)


def restore_test_alerts(event, test):
    key = f"restore-test:{test.source_id}"
    if test.passed:
        alerts.recover(key, title=f"Restore test of {test.source} passed again", strict=True)
    elif test.status != RunStatus.CANCELLED:
        alerts.alert(
            key,
            "restore_test_failed",
            f"Restore test of {test.source} failed",
            detail=test.error[:1000],
            url=test.get_absolute_url(),
            strict=True,
        )


def failover_started_alert(event, run):
    alerts.alert(
        f"failover:run:{run.pk}:started",
        "failover_started",
        f"{run} started for {run.system}",
        url=run.get_absolute_url(),
        strict=True,
        notify=run.mode == "live",  # a test run is recorded, never pages on-call
    )


def failover_alert(event, run):
    title = f"{run}: {run.get_status_display().lower()}"
    if run.rto is not None:
        title += f", RTO {format_duration(run.rto)}"
    alerts.alert(
        f"failover:run:{run.pk}:finished",
        "failover_finished",
        title,
        detail=run.error,
        url=run.get_absolute_url(),
        strict=True,
        notify=run.mode == "live",
    )


def timeline(event, run):
    note_run_transition(run)


def handlers_for(event, model) -> list[tuple[str, object]]:
    """The named handlers of one event, in order (anomalies before the alerts that read them)."""
    if model is None:
        return []
    if event.transition != FINISHED:
        if issubclass(model, FailoverRun):
            return [("failover_started_alert", failover_started_alert)]
        return []
    found = []
    if issubclass(model, BackupRun):
        found += [("anomalies", detect_anomalies), ("backup_alerts", backup_alerts)]
    elif issubclass(model, RestoreTest):
        found.append(("restore_test_alerts", restore_test_alerts))
    elif issubclass(model, FailoverRun):
        found.append(("failover_alert", failover_alert))
    found.append(("timeline", timeline))
    return found


# --- the consumer ----------------------------------------------------------------------------
def process_events(limit: int = BATCH) -> int:
    """Handle pending run events, oldest first; return how many this call claimed."""
    pending = RunEvent.objects.filter(processed_at__isnull=True).order_by("pk")
    claimed = 0
    for pk in list(pending.values_list("pk", flat=True)[:limit]):
        if claim(pk):
            claimed += 1
            process(pk)
    return claimed


def claim(pk: int) -> bool:
    """Take one pending event for this consumer (a conditional update; False if another has it)."""
    now = timezone.now()
    free = Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_TIMEOUT)
    rows = RunEvent.objects.filter(free, pk=pk, processed_at__isnull=True)
    return rows.update(claimed_at=now, attempts=F("attempts") + 1) == 1


def process(pk: int):
    """Run the event's handlers not yet done; mark it processed, or leave it for a retry."""
    event = RunEvent.objects.select_related("content_type").get(pk=pk)
    model = event.content_type.model_class()
    run = None
    if model is not None:
        run = model._default_manager.filter(pk=event.object_id).first()
    if run is None:  # deleted meanwhile (or its app removed): nothing left to tell about
        model = None
    handled, errors = list(event.handled or []), []
    for name, handler in handlers_for(event, model):
        if name in handled:
            continue
        try:
            with transaction.atomic():  # a failing handler leaves no half-written rows
                handler(event, run)
        except Exception as exc:
            log.exception("run event #%s (%s): handler %s failed", event.pk, run, name)
            errors.append(f"{name}: {type(exc).__name__}: {exc}"[:500])
            continue
        handled.append(name)
        RunEvent.objects.filter(pk=pk).update(handled=handled)
    now = timezone.now()
    done = {"claimed_at": None, "handled": handled, "error": "\n".join(errors)}
    if not errors or event.attempts >= MAX_ATTEMPTS:
        done["processed_at"] = now
        if errors:
            log.error("run event #%s given up after %d attempts", event.pk, event.attempts)
    RunEvent.objects.filter(pk=pk).update(**done)
