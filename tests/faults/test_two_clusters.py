"""Two clusters against the same database: each scheduled backup runs exactly once.

Both clusters start together, so their schedulers (django-q2 runs one about 30 s after a
cluster starts, then every 30 s) race for the same due schedules. Schedules are row-locked
(select_for_update) and runs are claimed by a conditional update, so no job runs twice and
none is skipped as "busy".
"""

import pytest
from django.utils import timezone
from django_q.models import Schedule, Task

from backups.models import BackupJob, BackupRun
from backups.schedules import SCHEDULED_FUNC
from tests.factories import BackupJobFactory, DestinationFactory
from tests.support import data
from tests.support.cluster import running_cluster, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

JOBS = 8


def test_two_clusters_run_each_scheduled_backup_exactly_once(tmp_path):
    dest = DestinationFactory(name="local", path=str(tmp_path / "store"))
    for i in range(JOBS):
        source = data.sqlite_source(f"s{i}", data.small_sqlite(tmp_path / f"s{i}.db"))
        BackupJobFactory(
            name=f"job-{i}",
            source=source,
            destinations=[dest],
            schedule="0 3 * * *",
            timezone="UTC",
        )
    due = Schedule.objects.filter(func=SCHEDULED_FUNC)
    assert due.count() == JOBS
    due.update(next_run=timezone.now())

    with running_cluster(workers=1) as first, running_cluster(workers=1) as second:
        wait_for(
            lambda: BackupRun.objects.filter(finished__isnull=False).count() >= JOBS,
            timeout=120,
            every=0.5,
            message=f"{JOBS} finished runs",
        )
        wait_for(
            lambda: Task.objects.filter(func=SCHEDULED_FUNC).count() >= JOBS,
            timeout=30,
            message="the task results",
        )
        assert first.poll() is None and second.poll() is None

    for job in BackupJob.objects.all():
        runs = list(job.runs.all())
        assert len(runs) == 1, [(r.pk, r.status, r.error) for r in runs]
        assert runs[0].status == "succeeded" and runs[0].trigger == "scheduled"
    assert Task.objects.filter(func=SCHEDULED_FUNC).count() == JOBS
    # Every schedule moved on to its next fire (tomorrow 03:00), not left due.
    assert not Schedule.objects.filter(func=SCHEDULED_FUNC, next_run__lte=timezone.now()).exists()
