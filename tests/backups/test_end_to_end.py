"""Run now through a real django-q2 cluster in a subprocess, on the test database."""

import pytest

from backups import services
from backups.models import BackupRun
from dr_portal.runs import RunStatus
from tests.support.cluster import running_cluster, wait_for


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_now_is_executed_by_a_real_worker(job):
    run = services.start_run(job, "manual")
    services.enqueue_run(run)  # outside atomic: sent at once
    with running_cluster(workers=1):
        wait_for(
            lambda: (
                BackupRun.objects.get(pk=run.pk).status not in (RunStatus.QUEUED, RunStatus.RUNNING)
            ),
            timeout=120,
            message="the backup run to finish",
        )
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.task_id and run.worker
    assert run.copies.get().ok
