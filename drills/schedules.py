"""The drills app's system schedules, kept by name (never duplicated)."""

from django_q.models import Schedule

from dr_portal.lib.queue import ensure_schedule


def ensure_schedules():
    """Sync running drills every minute; check overdue plans daily at 08:00 UTC."""
    ensure_schedule(
        "system: sync running drills",
        "drills.tasks.sync_running_drills",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "system: drills overdue",
        "drills.tasks.check_overdue_drills",
        schedule_type=Schedule.CRON,
        cron="0 8 * * *",
    )


def after_migrate(sender, **kwargs):
    ensure_schedules()
