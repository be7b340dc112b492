"""SIGKILL the worker in the middle of a large backup: the reaper fails the run ("worker lost"),
the job lock is free, no partial artifact is left on disk or in S3, and the next run succeeds.

The source is a directory with a 50 GB sparse disk image: a large backup that costs no disk and
streams for minutes, so the kill lands mid-stream (checked before killing).
"""

import os
import signal
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task, fetch

from backups import services
from backups.models import BackupJob, BackupRun
from incidents.models import Alert
from tests.factories import BackupJobFactory, DestinationFactory
from tests.faults.conftest import wait_run
from tests.support import data
from tests.support.cluster import running_cluster, wait_for, worker_pid

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REAP_AFTER_S = 4


def test_worker_killed_mid_backup_is_reaped_and_leaves_nothing_behind(tmp_path, s3):
    tree = data.sparse_tree(tmp_path / "images", gigabytes=50)
    source = data.files_source("images", tree)
    local_dir = tmp_path / "store"
    job = BackupJobFactory(
        name="images-nightly",
        source=source,
        destinations=[
            DestinationFactory(name="local", path=str(local_dir)),
            data.s3_destination("s3", s3, "dr-faults"),
        ],
    )
    scratch = settings.VAR_DIR / "scratch"
    scratch_before = set(data.files_under(scratch))

    with running_cluster(workers=1, DR_REAP_AFTER_S=REAP_AFTER_S):
        run = services.start_run(job, "manual")
        services.enqueue_run(run)

        def streaming():
            row = BackupRun.objects.get(pk=run.pk)
            seen[:] = [row.status, row.phase, row.bytes_read, row.log]
            return row if row.phase == "streaming" and row.bytes_read > 0 else None

        seen = []
        try:
            row = wait_for(streaming, timeout=90, every=0.2, message="the backup to stream")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen {seen}") from None
        # Mid-stream: a temporary artifact on disk, an open multipart upload in S3.
        assert any(".tmp-" in f for f in data.files_under(local_dir)), data.files_under(local_dir)
        assert s3.multipart_uploads("dr-faults"), "no multipart upload in progress"
        os.kill(worker_pid(row), signal.SIGKILL)

        # The reaper task, run by the cluster's own (respawned) worker once the beat is stale.
        wait_for(
            lambda: (
                BackupRun.objects.get(pk=run.pk).heartbeat_at
                < timezone.now() - timedelta(seconds=REAP_AFTER_S + 0.5)
            ),
            timeout=30,
            message="the heartbeat to go stale",
        )
        task_id = async_task("dr_portal.tasks.reap_lost_runs")
        reaped = wait_for(lambda: fetch(task_id), timeout=60, message="the reaper task to finish")
        assert reaped.success and reaped.result == 1, reaped.result
        lost = BackupRun.objects.get(pk=run.pk)
        assert lost.status == "failed"
        assert lost.error.startswith("worker lost"), lost.error
        assert str(worker_pid(row)) in lost.error
        assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None
        assert not lost.copies.exists()

        # Nothing partial is left: no temp file, no artifact, no open upload, no scratch copy.
        assert data.files_under(local_dir) == []
        assert s3.objects("dr-faults") == []
        assert s3.multipart_uploads("dr-faults") == []
        assert set(data.files_under(scratch)) <= scratch_before

        # The alert follows the run's event, handled by its own task after the reaper's.
        alerts = Alert.objects.filter(kind="backup_failed")
        wait_for(alerts.exists, timeout=30, message="the backup_failed alert")
        assert alerts.count() == 1 and alerts.get().seen_count == 1

        # The next run of the same job takes the free lock and succeeds.
        (tree / "disk.img").unlink()  # a small source this time, so the run is quick
        nxt = services.start_run(job, "manual")
        services.enqueue_run(nxt)
        done = wait_run(BackupRun, nxt.pk, {"succeeded", "partial", "failed"}, timeout=90)
        assert done.status == "succeeded", done.error
        assert done.copies.filter(ok=True).count() == 2
        wait_for(
            lambda: Alert.objects.get(kind="backup_failed").recovered,
            timeout=30,
            message="the alert to recover",
        )


@pytest.mark.django_db(transaction=True)
def test_reaper_removes_a_dead_workers_scratch_copy_and_temp_files(tmp_path, settings):
    """The pieces a dead SQLite backup leaves, without a cluster: its worker "died" here."""
    settings.DR_REAP_AFTER_S = 1
    source = data.sqlite_source("toolhub-db", data.small_sqlite(tmp_path / "tool_hub.db"))
    store = tmp_path / "store"
    job = BackupJobFactory(
        name="toolhub-job",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(store))],
    )
    run = services.start_run(job, "manual")
    assert run.claim() and job.acquire_lock(run)
    key = services.artifact_key(run)
    # What the engine had written when the worker died: the snapshot, temp artifact, temp manifest.
    scratch = settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}" / "dr-sqlite-x"
    scratch.mkdir(parents=True)
    (scratch / "copy.db").write_bytes(b"SQLite format 3\0 plaintext copy of the source")
    (store / key).parent.mkdir(parents=True)
    name = key.rsplit("/", 1)[1]
    (store / key).parent.joinpath(f".{name}.drpa.tmp-0badf00d").write_bytes(b"DRPA partial")
    (store / key).parent.joinpath(f".{name}.drpa.manifest.json.tmp-0badf00d").write_text("{")
    unrelated = (store / key).parent / "other-run.drpa"
    unrelated.write_bytes(b"a finished artifact of another run")
    BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=5))

    from dr_portal.tasks import reap_lost_runs

    assert reap_lost_runs() == 1
    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("worker lost")
    assert not scratch.parent.exists()
    assert data.files_under(store) == [f"{key.split('/')[0]}/other-run.drpa"]
    assert "removed what the lost worker left" in run.log
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None
