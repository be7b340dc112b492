"""Restores and restore tests record what they create before creating it; the reaper and the
sweep remove it after a dead worker; the database holds one live restore per target; a copy
found missing or unreadable is marked lost and RPO, readiness and restores stop using it."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.models import BackupCopy
from recovery import copies, restore_tests, restores, runner, workspace
from recovery.engine import pg
from recovery.models import Restore, RestoreTest
from recovery.readiness import source_readiness
from tests.factories import RestoreTestFactory, SourceFactory
from tests.recovery.conftest import make_sqlite_db, run_test
from tests.support.data import backup


def _kill(run):
    """What a dead worker looks like to the reaper: a beat long ago."""
    type(run).objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))


def test_reaper_drops_a_dead_restore_tests_scratch_database_and_plaintext(
    pg_source, work_dir, settings
):
    run = backup(pg_source)
    test = restore_tests.start_restore_test(pg_source, backup_run=run)
    assert test.claim()
    # What the worker had done when it died: its work dir with the decrypted dump, scratch db.
    tmp = Path(workspace.make_work_dir(test, "dr-restore-test-"))
    assert oct(tmp.stat().st_mode & 0o777) == "0o700"
    (tmp / f"artifact-{run.pk}").write_bytes(b"PGDMP plaintext")
    name = pg.new_scratch_name(settings.DR_SCRATCH_PREFIX)
    workspace.record_database(test, "scratch", name)
    server = workspace.scratch_server()
    pg.create_database(server, name)
    _kill(test)

    assert RestoreTest.reap() == 1
    test.refresh_from_db()
    assert test.status == "failed" and test.error.startswith("worker lost")
    assert not pg.database_exists(server, name)
    assert not tmp.exists() and list(work_dir.iterdir()) == []
    assert test.temporaries == []
    assert "removed what the lost worker left" in test.log and name in test.log


def test_reaper_drops_a_dead_restores_staging_database_not_its_target(pg_source, work_dir):
    run = backup(pg_source)
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_source.db.dbname}_copy"
    restore = restores.start_restore(pg_source, target=url, backup_run=run)
    assert restore.claim()
    admin = workspace.scratch_server()
    staging = f"{pg_source.db.dbname}_restoring_x"[:60]
    target = f"{pg_source.db.dbname}_copy"
    workspace.record_database(restore, "target", staging)
    workspace.record_database(restore, "target", target)  # a bad record never drops the target
    pg.create_database(admin, staging)
    pg.create_database(admin, target)
    try:
        _kill(restore)
        assert Restore.reap() == 1
        assert not pg.database_exists(admin, staging)
        assert pg.database_exists(admin, target)
    finally:
        pg.drop_database(admin, staging)
        pg.drop_database(admin, target)


def test_a_finished_restore_test_leaves_nothing_recorded(pg_source, work_dir):
    backup(pg_source)
    test = run_test(pg_source)
    assert test.status == "succeeded", test.error
    assert test.temporaries == []
    assert list(work_dir.iterdir()) == []


def test_the_sweep_retries_what_could_not_be_removed(sqlite_source, work_dir, tmp_path):
    from recovery.tasks import sweep_finished

    backup(sqlite_source)
    test = run_test(sqlite_source)
    leftover = work_dir / "dr-restore-test-left"
    leftover.mkdir()
    (leftover / "artifact").write_bytes(b"plaintext")
    test.record_temporary(kind="path", path=str(leftover))
    assert str(leftover) in sweep_finished()
    assert not leftover.exists()
    test.refresh_from_db()
    assert test.temporaries == []


def test_one_live_restore_per_target_is_held_by_the_database(sqlite_source, tmp_path, db):
    run = backup(sqlite_source)
    target = tmp_path / "restored.db"
    first = restores.start_restore(sqlite_source, target=str(target), backup_run=run)
    other = SourceFactory(
        system=sqlite_source.system,
        name="other-db",
        kind="sqlite",
        path=str(make_sqlite_db(tmp_path / "other.db")),
    )
    with pytest.raises(runner.Busy, match="already queued or running"):
        restores.start_restore(other, target=str(target))
    # Even a writer that skips the read is refused by the constraint.
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Restore.objects.create(
            source=other, failure_type="database_failure", target_kind="file", target=str(target)
        )
    first.cancel()
    assert restores.start_restore(other, target=str(target)).status == "queued"


def test_one_live_restore_test_per_source_is_held_by_the_database(sqlite_source):
    from django.db import IntegrityError, transaction

    restore_tests.start_restore_test(sqlite_source)
    with pytest.raises(IntegrityError), transaction.atomic():
        RestoreTestFactory(source=sqlite_source)


def test_a_copy_deleted_from_its_destination_no_longer_counts_for_rpo(sqlite_source, work_dir):
    older = backup(sqlite_source)
    newest = backup(sqlite_source)
    BackupRun = type(newest)
    BackupRun.objects.filter(pk=older.pk).update(
        data_taken_at=newest.data_taken_at - timedelta(hours=5)
    )
    assert source_readiness([sqlite_source])[sqlite_source.pk].newest_backup_id == newest.pk

    # The only copy of the newest backup is deleted behind the portal's back.
    Path(newest.copies.get().location).unlink()
    test = run_test(sqlite_source, backup_run=newest)
    assert test.status == "failed" and "missing" in test.error
    copy = BackupCopy.objects.get(run=newest)
    assert copy.lost_at is not None and not copy.ok and copy.error.startswith("lost:")

    r = source_readiness([sqlite_source])[sqlite_source.pk]
    assert r.newest_backup_id == older.pk
    assert r.rpo_now >= timedelta(hours=5)
    assert copies.newest_good_backup(sqlite_source).pk == older.pk


def test_retention_check_marks_a_missing_copy_lost(sqlite_source):
    from backups import retention

    run = backup(sqlite_source)
    copy = run.copies.get()
    Path(copy.location).unlink()
    assert [c.pk for c in retention.find_lost_copies(copy.destination)] == [copy.pk]
    copy.refresh_from_db()
    assert copy.lost_at and not copy.ok
    assert source_readiness([sqlite_source])[sqlite_source.pk].newest_backup_id is None


def test_an_unmounted_destination_marks_nothing_lost(sqlite_source, tmp_path):
    import shutil

    from backups import retention

    run = backup(sqlite_source)
    copy = run.copies.get()
    shutil.rmtree(copy.destination.path)  # the whole volume is gone, not one artifact
    assert retention.find_lost_copies(copy.destination) == []
    copy.refresh_from_db()
    assert copy.ok and copy.lost_at is None


def test_reaper_keeps_the_staging_copy_when_the_worker_died_mid_swap(sqlite_source):
    import socket

    run = backup(sqlite_source)
    restore = restores.start_restore(sqlite_source, onto_source=True, backup_run=run)
    assert restore.claim()
    target = Path(restore.target)
    staging = target.with_name(f".{target.name}.restoring-1")
    restore.record_temporary(
        kind="path", path=str(staging), host=socket.gethostname(), target=str(target)
    )
    staging.write_bytes(target.read_bytes())
    target.rename(target.with_name(f"{target.name}.before_restore_1"))  # then the worker died
    _kill(restore)

    assert Restore.reap() == 1
    restore.refresh_from_db()
    assert staging.exists()  # the only current copy of the data is not removed
    assert "may have died mid-swap" in restore.log
    assert restore.temporaries  # still listed: the sweep removes it once the target is back
