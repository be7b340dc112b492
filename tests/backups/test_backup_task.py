"""A real backup of a real SQLite file through the task, to real local directories."""

import sqlite3
from datetime import timedelta

import pytest
from django.utils import timezone

from backups import services, tasks
from backups.engine import open_destination, unpack_artifact
from backups.models import BackupCopy, BackupJob, BackupRun
from dr_portal.lib import keyring
from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory


def _run(job, trigger="manual"):
    run = services.start_run(job, trigger)
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def test_backup_of_sqlite_succeeds_and_records_copy(job, local_dest, tmp_path, sqlite_path):
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.bytes_read > 0 and run.bytes_stored > 0
    assert len(run.sha256) == 64
    assert run.data_taken_at is not None
    assert run.compression_ratio and run.compression_ratio > 1
    assert run.manifest["portal"]["source"] == "toolhub-db"
    copy = run.copies.get()
    assert copy.ok and copy.destination == local_dest
    assert copy.location.startswith(str(tmp_path / "dest-a"))
    # The stored artifact decodes back to a SQLite database with the source's rows.
    store = open_destination(local_dest.to_spec())
    out = tmp_path / "restored.db"
    with store.open_read(copy.location) as stored, open(out, "wb") as target:
        unpack_artifact(stored, target, keyring.ring())
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 300
    # The lock is free again and the log tells the story.
    job.refresh_from_db()
    assert job.locked_by_run_id is None
    assert "stored at local" in run.log


def test_stored_bytes_hold_no_plaintext_row_values(job, sqlite_path):
    run = _run(job)
    with sqlite3.connect(sqlite_path) as conn:
        secret = conn.execute("SELECT value FROM secrets LIMIT 1").fetchone()[0]
    stored = open(run.copies.get().location, "rb").read()
    assert secret.encode() not in stored
    assert b"nightly-report" not in stored


def test_partial_when_one_destination_is_unwritable(job, second_dest, tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where a directory should be")
    second_dest.path = str(blocker / "sub")
    second_dest.save()
    job.destinations.add(second_dest)
    run = _run(job)
    assert run.status == RunStatus.PARTIAL
    assert "second" in run.error
    assert [c.destination.name for c in run.copies.all()] == ["local"]
    assert not list((tmp_path / "dest-b").glob("**/*.drpa"))


def test_failed_when_source_is_missing_and_no_copy_recorded(job, sqlite_source, tmp_path):
    sqlite_source.path = str(tmp_path / "gone.db")
    sqlite_source.save()
    run = _run(job)
    assert run.status == RunStatus.FAILED
    assert "gone.db" in run.error
    assert not BackupCopy.objects.filter(run=run).exists()
    assert not list((tmp_path / "dest-a").glob("**/*.drpa"))


def test_disabled_destination_is_skipped_and_no_enabled_fails(job, local_dest):
    local_dest.enabled = False
    local_dest.save()
    run = _run(job)
    assert run.status == RunStatus.FAILED
    assert "no enabled destination" in run.error


def test_redelivered_task_is_harmless(job):
    run = _run(job)
    finished = run.finished
    assert tasks.run_backup(run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    assert run.finished == finished
    assert run.copies.count() == 1


def test_portal_database_is_a_source_out_of_the_box(local_dest):
    from backups.models import Source

    portal = Source.objects.get(name="portal-db")
    assert portal.is_portal_db
    job = BackupJobFactory(name="portal-daily", source=portal)
    job.destinations.set([local_dest])
    run = _run(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    from django.db import connection

    # Whichever database the portal runs on (SQLite embedded, PostgreSQL in CI).
    expected = "sqlite" if connection.vendor == "sqlite" else "postgresql"
    assert run.manifest["source_kind"] == expected


def test_scheduled_backup_creates_and_runs_a_run(job):
    assert tasks.scheduled_backup(job.pk) == RunStatus.SUCCEEDED
    run = job.runs.get()
    assert run.trigger == "scheduled"


def test_scheduled_backup_while_running_records_a_skipped_run(job):
    active = services.start_run(job, "manual")
    assert active.claim()
    assert tasks.scheduled_backup(job.pk) == "skipped"
    skipped = job.runs.exclude(pk=active.pk).get()
    assert skipped.status == RunStatus.CANCELLED
    assert f"run #{active.pk}" in skipped.error


def test_two_claims_race_one_wins(job):
    run = services.start_run(job, "manual")
    first = BackupRun.objects.get(pk=run.pk)
    second = BackupRun.objects.get(pk=run.pk)
    assert first.claim() is True
    assert second.claim() is False


def test_job_lock_is_held_by_one_run_only(job):
    a = job.create_run("manual")
    b = job.create_run("manual")
    assert job.acquire_lock(a)
    assert not BackupJob.objects.get(pk=job.pk).acquire_lock(b)
    job.release_lock(b)  # not the holder: no effect
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id == a.pk
    job.release_lock(a)
    assert BackupJob.objects.get(pk=job.pk).acquire_lock(b)


def test_lock_left_by_a_finished_run_is_cleared(job):
    a = job.create_run("manual")
    assert job.acquire_lock(a)
    BackupRun.objects.filter(pk=a.pk).update(status=RunStatus.FAILED)  # crash after finish
    b = job.create_run("manual")
    assert BackupJob.objects.get(pk=job.pk).acquire_lock(b)


def test_second_run_of_a_busy_job_is_refused(job):
    services.start_run(job, "manual")
    with pytest.raises(services.JobBusy):
        services.start_run(job, "manual")


def test_reaper_marks_stale_run_worker_lost_and_frees_lock(job):
    run = services.start_run(job, "manual")
    assert run.claim() and job.acquire_lock(run)
    BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert BackupRun.reap() == 1  # what the system reaper task calls per run model
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "worker lost" in run.error
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None


def test_transitions_refuse_illegal_moves(job):
    from dr_portal.runs import IllegalTransition

    run = services.start_run(job, "manual")
    run.finish(RunStatus.CANCELLED, "no")
    with pytest.raises(IllegalTransition):
        run.finish(RunStatus.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        run.finish(RunStatus.RUNNING)


def test_cancel_requested_stops_the_worker_and_keeps_no_copy(job, tmp_path):
    run = services.start_run(job, "manual")
    BackupRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run = services.execute(BackupRun.objects.get(pk=run.pk))
    assert run.status == RunStatus.CANCELLED
    assert "cancelled" in run.error
    assert not run.copies.exists()
    assert run.bytes_stored == 0 and run.compression_ratio is None  # it kept nothing
    assert not list((tmp_path / "dest-a").glob("**/*.drpa"))
    assert BackupJob.objects.get(pk=job.pk).locked_by_run_id is None
