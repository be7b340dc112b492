"""django-q2 schedules that follow the sources (restore tests) and the recovery system tasks."""

from croniter import croniter
from django.utils import timezone
from django_q.models import Schedule

from backups.models import Source
from dr_portal.lib.queue import drop_schedule, ensure_schedule


def restore_test_schedule_name(source_id: int) -> str:
    return f"restore test of source {source_id}"


def sync_source_schedule(source):
    """Create, update or drop the restore test schedule of one source (by name)."""
    name = restore_test_schedule_name(source.pk)
    cron = (source.restore_test_schedule or "").strip()
    if not cron:
        drop_schedule(name)
        return None

    next_run = croniter(cron, timezone.now()).get_next(type(timezone.now()))
    old_cron = Schedule.objects.filter(name=name).values_list("cron", flat=True).first()
    if old_cron is not None and old_cron != cron:
        # ensure_schedule keeps an existing next run; a new cron needs a new one.
        Schedule.objects.filter(name=name).update(next_run=next_run)
    return ensure_schedule(
        name,
        "recovery.tasks.scheduled_restore_test",
        args=repr((source.pk,)),
        schedule_type=Schedule.CRON,
        cron=cron,
        next_run=next_run,
    )


def sync_all_sources():
    wanted = set()
    for source in Source.objects.all():
        if sync_source_schedule(source) is not None:
            wanted.add(restore_test_schedule_name(source.pk))
    stale = Schedule.objects.filter(name__startswith="restore test of source ").exclude(
        name__in=wanted
    )
    stale.delete()


def ensure_recovery_schedules():
    ensure_schedule(
        "recovery: write heartbeats",
        "recovery.tasks.write_heartbeats",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "recovery: restore tests after backups",
        "recovery.tasks.tests_after_backups",
        schedule_type=Schedule.MINUTES,
        minutes=1,
    )
    ensure_schedule(
        "recovery: restore tests of copies not proven lately",
        "recovery.tasks.copy_restore_tests",
        schedule_type=Schedule.HOURLY,
    )
    ensure_schedule(
        "recovery: sync restore test schedules, sweep scratch databases",
        "recovery.tasks.housekeeping",
        schedule_type=Schedule.HOURLY,
    )
    sync_all_sources()
