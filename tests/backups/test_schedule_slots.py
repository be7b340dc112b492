"""One backup per schedule slot: a local-time cron fires once on DST days (through django-q2's own
scheduler and task payload), and a redelivered scheduled task for a slot that ran does nothing."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage

from backups import tasks
from backups.models import BackupRun
from backups.validators import next_fire
from dr_portal.runs import PROCESS_EVENTS
from tests.factories import BackupJobFactory


def _fires(cron, tz, start, end):
    fires, t = [], start
    while True:
        t = next_fire(cron, tz, t)
        if t >= end:
            return fires
        fires.append(t.astimezone(UTC))


def test_half_past_two_in_berlin_fires_once_on_the_fall_back_day():
    fires = _fires(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 12, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 12, 0, tzinfo=UTC),
    )
    # 02:30 CEST (00:30 UTC) on the 25th; the repeated 02:30 CET (01:30 UTC) is not a new slot.
    assert fires == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_a_slot_that_does_not_exist_in_spring_fires_once_after_the_gap():
    fires = _fires(
        "30 2 * * *",
        "Europe/Berlin",
        datetime(2026, 3, 28, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 12, 0, tzinfo=UTC),
    )
    assert fires == [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # 03:30 CEST, right after the skipped hour
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_hourly_cron_in_berlin_keeps_one_fire_per_wall_clock_hour_on_fall_back():
    fires = _fires(
        "0 * * * *",
        "Europe/Berlin",
        datetime(2026, 10, 24, 22, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 30, tzinfo=UTC),
    )
    # wall 01:00, 02:00 (CEST), 03:00, 04:00, 05:00: the repeated 02:00 CET is skipped
    assert [f.hour for f in fires] == [23, 0, 2, 3]


def _run_queued_tasks(broker):
    """What a worker does with the scheduler's tasks: call the function with the payload."""
    ran = []
    for ack, payload in broker.dequeue() or []:
        task = SignedPackage.loads(payload)
        module, _, name = task["func"].rpartition(".")
        assert module == "backups.tasks"
        ran.append(
            (task["args"], task["kwargs"], getattr(tasks, name)(*task["args"], **task["kwargs"]))
        )
        broker.acknowledge(ack)
    return ran, task if ran else None


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes old connections
def test_django_q2_scheduler_fires_a_berlin_job_once_on_the_fall_back_day(
    sqlite_source, local_dest
):
    from django_q.brokers import get_broker
    from django_q.scheduler import scheduler

    broker = get_broker()
    with time_machine.travel(datetime(2026, 10, 24, 12, 0, tzinfo=UTC), tick=True):
        job = BackupJobFactory(
            name="nightly", source=sqlite_source, schedule="30 2 * * *", timezone="Europe/Berlin"
        )
        job.destinations.set([local_dest])
    schedule = Schedule.objects.get(name=job.schedule_name)
    assert schedule.next_run == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)

    with time_machine.travel(datetime(2026, 10, 25, 0, 30, 5, tzinfo=UTC), tick=True):
        scheduler(broker)
        ran, task = _run_queued_tasks(broker)
    assert len(ran) == 1 and ran[0][1]["slot"] == "2026-10-25T00:30:00+00:00"
    schedule.refresh_from_db()
    assert schedule.next_run == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)

    # 02:30 again, now CET: the scheduler has nothing due.
    with time_machine.travel(datetime(2026, 10, 25, 1, 30, 5, tzinfo=UTC), tick=True):
        scheduler(broker)
        # Only the run-event consumers the run's start and end enqueued after commit wait.
        assert {q.func() for q in OrmQ.objects.all()} <= {PROCESS_EVENTS}
    assert BackupRun.objects.filter(job=job).count() == 1
    run = BackupRun.objects.get(job=job)
    assert run.status == "succeeded", run.error
    assert run.scheduled_for == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)

    # The same task delivered again hours later (a lost acknowledgement) does nothing.
    with time_machine.travel(datetime(2026, 10, 25, 6, 0, tzinfo=UTC), tick=True):
        assert tasks.scheduled_backup(*task["args"], **task["kwargs"]) == "already ran"
    assert BackupRun.objects.filter(job=job).count() == 1


def test_a_redelivered_task_for_a_skipped_slot_does_nothing(job):
    slot = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=0, microsecond=0)
    busy = job.create_run("manual")  # a run still queued: the slot is skipped
    assert tasks.scheduled_backup(job.pk, slot=slot.isoformat()) == "skipped"
    busy.cancel()
    assert tasks.scheduled_backup(job.pk, slot=slot.isoformat()) == "already ran"
    assert BackupRun.objects.filter(job=job, scheduled_for=slot).count() == 1


def test_a_task_without_a_slot_still_runs(job):
    """Schedules made before slots existed pass no slot: the task behaves as before."""
    assert tasks.scheduled_backup(job.pk) == "succeeded"
    assert BackupRun.objects.get(job=job).scheduled_for is None
