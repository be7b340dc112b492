"""django-q2 schedules follow jobs: created, edited, disabled, deleted; never duplicated."""

from datetime import UTC, datetime

import time_machine
from django_q.models import Schedule

from backups.models import BackupJob
from backups.schedules import RETENTION_SCHEDULE, ensure_system_schedules
from tests.factories import BackupJobFactory


def _schedules(job):
    return list(Schedule.objects.filter(name=job.schedule_name))


@time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=UTC), tick=False)
def test_schedule_follows_job_lifecycle(sqlite_source):
    job = BackupJobFactory(name="j", source=sqlite_source, schedule="0 2 * * *")
    (schedule,) = _schedules(job)
    assert schedule.schedule_type == Schedule.CRON and schedule.cron == "0 2 * * *"
    assert schedule.func == "backups.tasks.scheduled_backup"
    assert schedule.args == repr((job.pk,))
    assert schedule.next_run == datetime(2026, 3, 11, 2, 0, tzinfo=UTC)

    job.schedule = "30 4 * * *"
    job.save()
    job.save()
    (schedule,) = _schedules(job)
    assert schedule.cron == "30 4 * * *"
    assert schedule.next_run == datetime(2026, 3, 11, 4, 30, tzinfo=UTC)

    job.enabled = False
    job.save()
    assert _schedules(job) == []
    job.enabled = True
    job.save()
    assert len(_schedules(job)) == 1

    job.schedule = ""  # on demand only
    job.save()
    assert _schedules(job) == []
    job.schedule = "0 * * * *"
    job.save()
    name = job.schedule_name
    job.delete()
    assert not Schedule.objects.filter(name=name).exists()


@time_machine.travel(datetime(2026, 7, 10, 12, 0, tzinfo=UTC), tick=False)
def test_next_run_is_computed_in_the_jobs_timezone(sqlite_source):
    job = BackupJobFactory(
        name="berlin", source=sqlite_source, schedule="0 2 * * *", timezone="Europe/Berlin"
    )
    (schedule,) = _schedules(job)
    # 02:00 in Berlin in summer (CEST, UTC+2) is 00:00 UTC.
    assert schedule.next_run == datetime(2026, 7, 11, 0, 0, tzinfo=UTC)


def test_duplicate_schedule_rows_are_collapsed(sqlite_source):
    job = BackupJobFactory(name="j", source=sqlite_source, schedule="0 2 * * *")
    Schedule.objects.create(
        name=job.schedule_name, func="x", schedule_type=Schedule.CRON, cron="0 1 * * *"
    )
    job.save()
    assert len(_schedules(job)) == 1


@time_machine.travel(datetime(2026, 7, 10, 12, 0, tzinfo=UTC), tick=False)
def test_scheduled_task_corrects_next_run_to_the_jobs_zone(job):
    from backups import tasks

    job.schedule, job.timezone = "0 2 * * *", "Europe/Berlin"
    job.save()
    # django-q2 moved next_run using the portal's zone (UTC): 02:00 UTC.
    Schedule.objects.filter(name=job.schedule_name).update(
        next_run=datetime(2026, 7, 11, 2, 0, tzinfo=UTC)
    )
    tasks.scheduled_backup(job.pk)
    (schedule,) = _schedules(job)
    assert schedule.next_run == datetime(2026, 7, 11, 0, 0, tzinfo=UTC)


def test_system_retention_schedule_is_daily_and_single(db):
    ensure_system_schedules()
    ensure_system_schedules()
    (schedule,) = Schedule.objects.filter(name=RETENTION_SCHEDULE)
    assert schedule.func == "backups.tasks.apply_retention_task"


def test_admin_bulk_delete_drops_schedules(superuser_client, sqlite_source):
    from django.urls import reverse

    jobs = [
        BackupJobFactory(name=f"j{i}", source=sqlite_source, schedule="0 2 * * *") for i in range(2)
    ]
    names = [j.schedule_name for j in jobs]
    response = superuser_client.post(
        reverse("admin:backups_backupjob_changelist"),
        {"action": "delete_selected", "_selected_action": [j.pk for j in jobs], "post": "yes"},
    )
    assert response.status_code == 302
    assert not BackupJob.objects.exists()
    assert not Schedule.objects.filter(name__in=names).exists()


def test_schedule_of_a_vanished_job_stops(sqlite_source):
    from backups import tasks

    job = BackupJobFactory(name="j", source=sqlite_source, schedule="0 2 * * *")
    name, pk = job.schedule_name, job.pk
    BackupJob.objects.filter(pk=pk).delete()  # bypasses the model's delete()
    assert Schedule.objects.filter(name=name).exists()
    assert tasks.scheduled_backup(pk) is None
    assert not Schedule.objects.filter(name=name).exists()


def test_changing_destinations_is_audited_and_stamped(manager_client, job, second_dest):
    from django.urls import reverse

    from dr_portal.models import AuditEntry

    stamp = job.config_changed_at
    response = manager_client.post(
        reverse("backups:job_edit", args=[job.pk]),
        {
            "name": job.name,
            "source": job.source_id,
            "destinations": [second_dest.pk],
            "schedule": job.schedule,
            "timezone": "UTC",
            "compression": "zstd",
            "encrypt": "on",
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.config_changed_at > stamp
    entry = AuditEntry.objects.filter(action="update", changes__has_key="destinations").get()
    assert entry.changes["destinations"] == ["local", "second"]
