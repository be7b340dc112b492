"""A backup that lost its lease records nothing and never holds the job lock twice; an artifact
published without its catalog row is adopted by the sweep, one still being recorded is not."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from backups import services
from backups.catalog import adopt_orphans
from backups.models import BackupCopy, BackupJob, BackupRun
from tests.factories import BackupJobFactory, DestinationFactory
from tests.support import data
from tests.support.cluster import wait_for


@pytest.mark.django_db(transaction=True)
def test_a_reaped_backup_stops_records_nothing_and_leaves_the_lock_to_the_next_run(tmp_path):
    source = data.files_source("images", data.sparse_tree(tmp_path / "images", gigabytes=20))
    store = tmp_path / "store"
    job = BackupJobFactory(
        name="images-job",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(store))],
    )
    run = services.start_run(job, "manual")

    def body():
        try:
            services.execute(BackupRun.objects.get(pk=run.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    wait_for(
        lambda: BackupRun.objects.filter(pk=run.pk, phase="streaming", bytes_read__gt=0).exists(),
        timeout=30,
        message="the backup to stream",
    )
    # The reaper decides this worker is gone (its beats were lost) while it still streams.
    assert BackupRun.reap(now=timezone.now() + timedelta(minutes=5)) == 1
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None
    nxt = services.start_run(job, "manual")
    assert nxt.claim() and job.acquire_lock(nxt)

    worker.join(timeout=30)
    assert not worker.is_alive(), "the fenced backup did not stop"
    lost = BackupRun.objects.get(pk=run.pk)
    assert lost.status == "failed" and lost.error.startswith("worker lost")
    assert not lost.copies.exists() and not lost.sha256
    assert "lost the run to the reaper" in lost.log
    assert data.files_under(store) == []  # no artifact, no temporary file
    # The old worker's finally did not release (or take) the new run's lock.
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id == nxt.pk
    nxt.cancel()


def test_an_artifact_published_without_its_catalog_row_is_adopted(job):
    run = services.backup_now(job)
    assert run.status == "succeeded", run.error
    location = run.copies.get().location
    # A worker killed after publishing, before recording: no copy row, no finished run.
    BackupCopy.objects.filter(run=run).delete()
    BackupRun.objects.filter(pk=run.pk).update(
        status="failed", error="worker lost", artifact_key="", sha256="", data_taken_at=None
    )

    assert adopt_orphans() == {"local": 1}
    adopted = BackupCopy.objects.get(location=location)
    assert adopted.ok and adopted.run.status == "succeeded" and adopted.run.trigger == "catalog"
    assert adopted.run.sha256 == run.sha256 and adopted.run.data_taken_at == run.data_taken_at
    assert adopt_orphans() == {"local": 0}  # idempotent


def test_the_sweep_leaves_an_artifact_whose_run_is_still_recording(job):
    run = services.backup_now(job)
    BackupCopy.objects.filter(run=run).delete()
    BackupRun.objects.filter(pk=run.pk).update(status="running")  # between publish and record
    assert adopt_orphans() == {"local": 0}
    assert not BackupCopy.objects.exists()
