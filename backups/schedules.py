"""django-q2 schedules that follow backup jobs: one per enabled job with a cron, by name.

django-q2 computes a CRON schedule's next run in the portal's TIME_ZONE, not the job's,
so we set `next_run` ourselves (croniter in the job's time zone) when the job is saved and
again each time the scheduled task starts (backups.tasks.scheduled_backup).
"""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from backups.validators import next_fire
from dr_portal.lib.queue import drop_schedule, ensure_schedule

SCHEDULED_FUNC = "backups.tasks.scheduled_backup"


def sync_job_schedule(job):
    """Create, update or drop the job's schedule so it matches the job."""
    if not job.enabled or not job.schedule:
        drop_schedule(job.schedule_name)
        return None

    schedule = ensure_schedule(
        job.schedule_name,
        SCHEDULED_FUNC,
        args=repr((job.pk,)),
        schedule_type=Schedule.CRON,
        cron=job.schedule,
        # django-q2 passes the slot's intended time as slot=...: one run per slot.
        intended_date_kwarg="slot",
        next_run=next_fire(job.schedule, job.timezone, timezone.now()),
    )
    set_next_run(job, schedule)
    return schedule


def set_next_run(job, schedule=None):
    """Point the schedule at the job's next fire time in the job's own time zone."""
    nxt = next_fire(job.schedule, job.timezone, timezone.now())
    query = Schedule.objects.filter(name=job.schedule_name)
    if schedule is not None:
        query = query.filter(pk=schedule.pk)
        schedule.next_run = nxt
    query.update(next_run=nxt)
    return nxt


def drop_job_schedule(job):
    drop_schedule(job.schedule_name)


RETENTION_SCHEDULE = "system: apply backup retention"
ADOPT_SCHEDULE = "system: adopt artifacts missing from the catalog"
SCRUB_SCHEDULE = "system: scrub stored copies"
PITR_WINDOW_SCHEDULE = "system: refresh recoverable windows (PITR)"


def ensure_system_schedules():
    """Daily retention across all destinations (also applied after every backup)."""
    ensure_schedule(
        RETENTION_SCHEDULE,
        "backups.tasks.apply_retention_task",
        schedule_type=Schedule.CRON,
        cron="30 4 * * *",
        next_run=next_fire("30 4 * * *", "UTC", timezone.now()),
    )
    ensure_schedule(
        ADOPT_SCHEDULE,
        "backups.tasks.adopt_orphan_artifacts",
        schedule_type=Schedule.HOURLY,
    )
    # "RPO now" of a PITR source is the age of its newest archived WAL: read every minute.
    ensure_schedule(
        PITR_WINDOW_SCHEDULE,
        "backups.tasks.refresh_pitr_windows",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    hours = settings.DR_SCRUB_EVERY_HOURS
    if hours:
        ensure_schedule(
            SCRUB_SCHEDULE,
            "backups.tasks.scrub_task",
            schedule_type=Schedule.MINUTES,
            minutes=hours * 60,
            next_run=timezone.now() + timedelta(hours=1),  # not at once after a deploy
        )
    else:
        drop_schedule(SCRUB_SCHEDULE)
