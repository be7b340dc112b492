"""Two workers racing for one job: the database lock lets exactly one back it up."""

import threading

import pytest
from django.db import connection

from backups import services
from backups.models import BackupJob, BackupRun
from dr_portal.runs import RunStatus


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_job(job, monkeypatch):
    runs = [job.create_run("scheduled"), job.create_run("manual")]
    barrier = threading.Barrier(2, timeout=20)
    original = BackupJob.acquire_lock

    def acquire_together(self, run):
        barrier.wait()  # both workers reach the lock at the same moment
        return original(self, run)

    monkeypatch.setattr(BackupJob, "acquire_lock", acquire_together)
    errors = []

    def worker(run_id):
        try:
            services.execute(BackupRun.objects.get(pk=run_id))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(r.pk,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    statuses = sorted(BackupRun.objects.filter(job=job).values_list("status", flat=True))
    assert statuses == [RunStatus.CANCELLED, RunStatus.SUCCEEDED]
    loser = BackupRun.objects.get(job=job, status=RunStatus.CANCELLED)
    assert loser.error.startswith("skipped: run #")
    assert not loser.copies.exists()
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None
