"""django-q2 entry points of the recovery app: ids in, rows updated, nothing returned of value."""

import logging
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from backups.models import BackupRun, Source, Trigger
from dr_portal.lib.redact import redact
from dr_portal.runs import ACTIVE, DONE
from recovery import contents as backup_contents
from recovery import pitr_restores, pitr_tests, restore_tests, restores, rotation, runner
from recovery.cleanup import remove_temporaries
from recovery.engine import heartbeat, pitr
from recovery.engine.check_role import sweep_check_roles
from recovery.engine.pg import PgServer, RestoreError, sweep_scratch
from recovery.engine.staging import staging_leftovers
from recovery.models import HeartbeatState, Restore, RestoreTest, TargetKind
from recovery.schedules import drop_schedule, restore_test_schedule_name, sync_all_sources
from recovery.workspace import scratch_server, work_dir

log = logging.getLogger(__name__)


def run_restore_test(test_id: int):
    test = RestoreTest.objects.select_related("source", "backup_run").filter(pk=test_id).first()
    if test is None:
        log.warning("restore test %s no longer exists", test_id)
        return
    restore_tests.execute_restore_test(test)


def scheduled_restore_test(source_id: int):
    """The weekly (or per-source cron) restore test: create it and run it in this worker.

    It reads the copy a passed test read longest ago (recovery.rotation), so every
    destination holding the newest backup takes its turn.
    """
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        drop_schedule(restore_test_schedule_name(source_id))
        return
    try:
        test = restore_tests.start_restore_test(
            source, trigger=Trigger.SCHEDULED, destination=rotation.next_destination(source)
        )
    except (runner.Busy, restore_tests.NoCopyThere) as exc:
        log.info("scheduled restore test skipped: %s", exc)
        return
    restore_tests.execute_restore_test(test)


def copy_restore_tests() -> int:
    """Hourly: a pinned restore test for each copy not proven in DR_COPY_TEST_EVERY_DAYS."""
    return rotation.queue_overdue()


def run_restore(restore_id: int):
    restore = Restore.objects.select_related("source", "backup_run").filter(pk=restore_id).first()
    if restore is None:
        return
    if restore.pitr:
        pitr_restores.execute_pitr_restore(restore)
    else:
        restores.execute_restore(restore)


def tests_after_backups(window_hours: int = 24) -> int:
    """Queue a restore test for each new good backup of a source that asks for one."""
    since = timezone.now() - timedelta(hours=window_hours)
    runs = (
        BackupRun.objects.good()
        .filter(finished__gte=since, source__restore_test_after_backup=True)
        .exclude(restore_tests__trigger=Trigger.AFTER_BACKUP)
        .select_related("source")
        .order_by("finished")
    )
    queued = 0
    for run in runs:
        if RestoreTest.objects.filter(backup_run=run, trigger=Trigger.AFTER_BACKUP).exists():
            continue
        try:
            test = restore_tests.start_restore_test(
                run.source, backup_run=run, trigger=Trigger.AFTER_BACKUP
            )
        except runner.Busy:
            continue  # the next sweep picks it up
        restore_tests.enqueue_restore_test(test)
        queued += 1
    return queued


def write_heartbeats() -> int:
    """Write the current time into every source with a heartbeat; remember the outcome."""
    written = 0
    for source in Source.objects.filter(heartbeat_enabled=True):
        now = timezone.now()
        error, secrets = "", []
        try:
            spec = source.to_spec()
            secrets = [spec.password]
            if spec.kind == "postgresql":
                c = spec.config
                server = PgServer(
                    c["host"], int(c.get("port") or 5432), c["user"], spec.password, c["database"]
                )
                heartbeat.write_pg(server, now)
            elif spec.kind == "sqlite":
                heartbeat.write_sqlite(spec.config["path"], now)
            else:
                error = "heartbeats need a PostgreSQL or SQLite source"
        except (RestoreError, OSError, ValueError, Exception) as exc:  # noqa: B014
            error = redact(str(exc) or type(exc).__name__, secrets)[:500]
        values = {"last_attempt_at": now, "last_error": error}
        if not error:
            values["last_written_at"] = now
            written += 1
        HeartbeatState.objects.update_or_create(source=source, defaults=values)
    return written


def leftover_age_s() -> float:
    """Nothing a restore test creates may live longer than its task: the timeout plus an hour."""
    return float(getattr(settings, "Q_TIMEOUT", 4 * 3600) or 4 * 3600) + 3600


def sweep_finished() -> list[str]:
    """Temporaries still listed on finished restores and restore tests (the periodic sweep)."""
    removed = []
    for model in (RestoreTest, Restore):
        for run in model.objects.filter(status__in=list(DONE)).exclude(temporaries=[]):
            removed += remove_temporaries(run)
    return removed


def housekeeping(now: float | None = None) -> dict:
    """Sync restore test schedules; remove scratch databases and unpack directories that a
    killed worker left behind (older than any task may run)."""
    sync_all_sources()
    swept = sweep_finished()  # what finished runs recorded and could not remove at the time
    max_age = leftover_age_s()
    now = now or time.time()
    dropped, removed, failed = [], [], []
    try:
        # One database that cannot be dropped is logged and kept in `failed`; the rest go.
        dropped = sweep_scratch(scratch_server(), older_than_s=max_age, errors=failed)
        dropped += sweep_check_roles(scratch_server(), older_than_s=max_age)
    except RestoreError as exc:
        log.warning("scratch sweep skipped: %s", exc)
        failed.append(f"scratch sweep skipped: {exc}")
    root = Path(work_dir() or tempfile.gettempdir())
    for path in list(root.glob("dr-restore-test-*")) + list(root.glob("dr-restore-*")):
        try:
            if path.is_dir() and now - path.stat().st_mtime > max_age:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(str(path))
        except OSError:
            continue
    try:  # scratch data directories of PITR restore tests (their servers stopped first)
        removed += [
            str(Path(pitr_tests.scratch_parent()) / name)
            for name in pitr.sweep(pitr_tests.scratch_parent(), older_than_s=max_age)
        ]
    except OSError as exc:
        failed.append(f"PITR scratch sweep: {exc}")
    for path in _restore_staging_leftovers(max_age, now):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    for name in dropped + removed + swept:
        log.warning("removed a restore leftover: %s", name)
    return {
        "scratch_dropped": dropped,
        "scratch_failed": failed,
        "dirs_removed": sorted(set(removed)),
        "temporaries_removed": swept,
    }


def _restore_staging_leftovers(max_age: float, now: float) -> list:
    """Private staging directories that killed SQLite/files restores left beside their
    targets (targets with a restore still active are left alone)."""
    restores = Restore.objects.exclude(target_kind__in=[TargetKind.DATABASE, TargetKind.DATADIR])
    busy = set(restores.filter(status__in=list(ACTIVE)).values_list("target", flat=True))
    targets = set(restores.values_list("target", flat=True)) - busy
    return staging_leftovers(sorted(targets), max_age, now)


def read_backup_contents(run_id: int):
    """Read and cache what a backup holds (the run page's "Read contents")."""
    run = BackupRun.objects.filter(pk=run_id).first()
    if run is None:
        return
    try:
        backup_contents.contents_for(run)
    except (runner.RecoveryFailure, runner.NeedsRetrieval) as exc:
        log.warning("contents of backup run #%s: %s", run_id, exc)
