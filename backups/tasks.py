"""django-q2 entry points of the backups app. Arguments are ids, never objects or secrets."""

import logging
from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from backups import physical, pitr_adopt, pitr_setup, retention, scrub, services
from backups.catalog import adopt_orphans
from backups.models import BackupJob, BackupRun, Trigger
from backups.schedules import set_next_run
from dr_portal.lib.queue import drop_schedule

log = logging.getLogger(__name__)


def run_backup(run_id: int):
    """Execute a queued run (from "Run now"); a redelivered task finds it claimed and stops."""
    try:
        run = BackupRun.objects.select_related("job", "source").get(pk=run_id)
    except BackupRun.DoesNotExist:
        log.warning("backup run %s no longer exists", run_id)
        return None
    run = services.execute(run)
    return run.status


def scheduled_backup(job_id: int, slot: str | None = None):
    """The schedule's entry point: create the run row, then execute it in this worker.

    `slot` is the schedule's intended fire time (django-q2 passes it, see
    backups.schedules): the run is keyed by (job, slot) in the database, so a redelivered
    task for a slot that already ran (or was skipped) does nothing.
    If the job still has a queued or running run, no second run starts: a cancelled run
    records "skipped: ..." so the gap is visible in the job's history.
    """
    try:
        job = BackupJob.objects.select_related("source").get(pk=job_id)
    except BackupJob.DoesNotExist:
        # Deleted without its model delete() (a queryset delete): stop the schedule too.
        log.warning("scheduled backup for job %s, which no longer exists", job_id)
        drop_schedule(f"backup job {job_id}")
        return None

    if job.schedule:
        set_next_run(job)  # django-q2 computed it in the portal's zone; use the job's
    if not job.enabled:
        log.info("job %s is disabled; scheduled run skipped", job)
        return None
    scheduled_for = _slot_time(slot)
    if scheduled_for and BackupRun.objects.filter(job=job, scheduled_for=scheduled_for).exists():
        log.warning("%s: the slot %s already ran; redelivered task ignored", job, slot)
        return "already ran"
    try:
        run = services.start_run(job, Trigger.SCHEDULED, scheduled_for=scheduled_for)
    except services.SlotTaken:
        log.warning("%s: the slot %s already ran; redelivered task ignored", job, slot)
        return "already ran"
    except services.JobBusy as exc:
        active = job.active_run()
        reason = (
            f"skipped: run #{active.pk} of this job was still {active.status}"
            if active
            else "skipped: another run of this job was active"
        )
        log.warning("%s: %s", job, exc)
        try:
            with transaction.atomic():
                skipped = job.create_run(Trigger.SCHEDULED, scheduled_for=scheduled_for)
        except IntegrityError:
            return "already ran"
        skipped.append_log(reason)
        skipped.finish("cancelled", reason)
        return "skipped"
    run = services.execute(run)
    return run.status


def _slot_time(slot):
    if not slot:
        return None
    try:
        value = datetime.fromisoformat(str(slot))
    except ValueError:
        log.warning("scheduled backup: unreadable slot %r", slot)
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def apply_retention_task():
    """Daily retention over every destination, then leftovers of writes that never finished."""
    results = retention.apply_all()
    retention.abort_stale_uploads()
    return {name: sum(1 for d in decisions if d.delete) for name, decisions in results.items()}


def adopt_orphan_artifacts():
    """Hourly: artifacts published without their catalog row (a killed worker) are adopted."""
    return adopt_orphans()


def scrub_task():
    """The scheduled scrub pass: every enabled destination, within its byte budget."""
    result = scrub.scrub()
    return {"copies_lost": result.lost, "destinations": len(result.destinations)}


def refresh_pitr_windows():
    """Every minute: each PITR source's recoverable window (an error is kept on its row),
    after the catalog of each adopted stanza is brought in line with its repository."""
    adopted = pitr_adopt.sync_all()
    windows = physical.refresh_all_windows()
    return {**windows, **{f"{name} (catalog)": text for name, text in adopted.items()}}


def pitr_check_task(source_id: int):
    """The source page's "Check archiving" button; the outcome is stored on the source."""
    result = pitr_setup.check_and_store(source_id)
    return None if result is None else result.ok
