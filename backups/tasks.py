"""django-q2 entry points of the backups app. Arguments are ids, never objects or secrets."""

import logging

from backups import services
from backups.models import BackupJob, BackupRun, Trigger

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


def scheduled_backup(job_id: int):
    """The schedule's entry point: create the run row, then execute it in this worker.

    If the job still has a queued or running run, no second run starts: a cancelled run
    records "skipped: ..." so the gap is visible in the job's history.
    """
    try:
        job = BackupJob.objects.select_related("source").get(pk=job_id)
    except BackupJob.DoesNotExist:
        # Deleted without its model delete() (a queryset delete): stop the schedule too.
        from dr_portal.lib.queue import drop_schedule

        log.warning("scheduled backup for job %s, which no longer exists", job_id)
        drop_schedule(f"backup job {job_id}")
        return None
    from backups.schedules import set_next_run

    if job.schedule:
        set_next_run(job)  # django-q2 computed it in the portal's zone; use the job's
    if not job.enabled:
        log.info("job %s is disabled; scheduled run skipped", job)
        return None
    try:
        run = services.start_run(job, Trigger.SCHEDULED)
    except services.JobBusy as exc:
        active = job.active_run()
        skipped = job.create_run(Trigger.SCHEDULED)
        reason = (
            f"skipped: run #{active.pk} of this job was still {active.status}"
            if active
            else "skipped: another run of this job was active"
        )
        log.warning("%s: %s", job, exc)
        skipped.append_log(reason)
        skipped.finish("cancelled", reason)
        return "skipped"
    run = services.execute(run)
    return run.status


def apply_retention_task():
    """Daily retention over every destination, then leftovers of writes that never finished."""
    from backups import retention

    results = retention.apply_all()
    retention.abort_stale_uploads()
    return {name: sum(1 for d in decisions if d.delete) for name, decisions in results.items()}
