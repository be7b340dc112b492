"""Restore tests: restore a backup into scratch, run its checks, record the evidence.

start → enqueue → execute (claim, fetch the best copy verified, restore into a scratch
database or directory, check, finish). A PostgreSQL backup with one restore job is
streamed straight into pg_restore; everything else is unpacked into the run's private
work directory first (a parallel dump into a dump directory, restored with -j N).
"""

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.engine import EngineError, open_destination
from backups.globals import fetch_globals, globals_info
from backups.models import BackupCopy, BackupRun, Destination, Source
from dr_portal.lib import keyring
from dr_portal.lib.queue import enqueue
from dr_portal.lib.redact import redact
from dr_portal.runs import ACTIVE, RunStatus
from recovery.copies import (
    artifact_kind,
    copy_label,
    dump_jobs,
    fetch_verified,
    is_directory_dump,
    newest_good_backup,
    rank_copies,
    read_copy,
    remove_fetched,
)
from recovery.engine.checks import Outcome
from recovery.engine.pg import RestoreError
from recovery.engine.verify import (
    Phases,
    VerifyOutcome,
    verify_files,
    verify_postgres,
    verify_sqlite,
)
from recovery.models import DataBasis, PitrPoint, RestoreTest, Trigger
from recovery.observations import previous_observations
from recovery.pitr_tests import run_pitr_test
from recovery.runner import (
    Busy,
    NeedsRetrieval,
    RecoveryFailure,
    RunResult,
    execute,
    fenced_phases,
)
from recovery.workspace import (
    make_work_dir,
    record_database,
    restore_jobs,
    scratch_prefix,
    scratch_server,
)

__all__ = [
    "Busy",
    "NoCopyThere",
    "RestoreTestResult",
    "enqueue_restore_test",
    "execute_restore_test",
    "previous_observations",
    "start_restore_test",
]


@dataclass
class RestoreTestResult(RunResult):
    """The evidence a restore test records when it finishes (None: not recorded)."""

    copy_used: str | None = None
    copy_destination_id: int | None = None
    bytes_fetched: int | None = None
    needs_retrieval: bool | None = None
    checks: list[dict] | None = None
    integrity: str | None = None
    bytes_restored: int | None = None
    warnings: list[str] | None = None
    data_at: datetime | None = None
    data_basis: str | None = None
    data_age: timedelta | None = None
    phases: list[dict] | None = None
    rto: timedelta | None = None
    throughput_bps: float | None = None


class NoCopyThere(ValueError):
    """A test pinned to a destination that holds no copy to read."""


def start_restore_test(
    source: Source,
    *,
    backup_run: BackupRun | None = None,
    trigger=Trigger.MANUAL,
    user=None,
    destination: Destination | None = None,
    at: datetime | None = None,
) -> RestoreTest:
    """Create a queued test unless one of this source is already queued or running.

    destination: read only its copy ("the local site is lost"); NoCopyThere when it holds
    no live copy of `backup_run` (or of any good backup of the source). For a PITR source
    the copy is its pgBackRest repository there, and `at` a point to restore to (default:
    alternately the newest recoverable point and a random one).
    """
    if at is not None and not source.pitr:
        raise ValueError(f"{source.name} has no point-in-time recovery: test one backup instead")
    if destination is not None and source.pitr:
        if destination not in source.physical_destinations():
            raise NoCopyThere(f"{destination.name} holds no pgBackRest repository of {source}")
    elif destination is not None:
        _check_copy_there(source, backup_run, destination)
    active = RestoreTest.objects.filter(source=source, status__in=list(ACTIVE)).first()
    if active is not None:
        raise Busy(f"restore test #{active.pk} of {source} is already {active.status}")
    try:  # the read above names the culprit; the constraint is what holds under a race
        with transaction.atomic():
            return RestoreTest.objects.create(
                source=source,
                backup_run=backup_run,
                trigger=trigger,
                destination=destination,
                pitr_point=PitrPoint.GIVEN if at is not None else "",
                target_time=at,
                requested_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        raise Busy(f"a restore test of {source} is already queued or running") from None


def _check_copy_there(source: Source, backup_run: BackupRun | None, destination: Destination):
    if backup_run is not None:
        if not backup_run.copies.live().filter(destination=destination).exists():
            raise NoCopyThere(
                f"{destination.name} holds no live copy of backup run #{backup_run.pk}"
            )
    elif newest_good_backup(source, destination) is None:
        raise NoCopyThere(f"{destination.name} holds no live copy of a good backup of {source}")


def enqueue_restore_test(test: RestoreTest):
    enqueue("recovery.tasks.run_restore_test", test.pk, group=f"restore tests {test.source_id}")


def execute_restore_test(test: RestoreTest) -> RestoreTest:
    """Run a queued restore test to its end; safe to call twice (the claim decides)."""
    return execute(test, run_pitr_test if test.source.pitr else _restore_test)


@dataclass
class _Progress:
    """One test in progress: its phases, the result being gathered and its clocks."""

    test: RestoreTest
    phases: Phases
    started: datetime
    clock: float = field(default_factory=time.monotonic)
    result: RestoreTestResult = field(default_factory=RestoreTestResult)

    def finish(self, status: str, error: str = ""):
        elapsed = time.monotonic() - self.clock
        result, phases = self.result, self.phases
        result.phases = phases.items
        # RTO ends when the checks pass: dropping the scratch copy afterwards is not recovery.
        result.rto = timedelta(seconds=round(elapsed - phases.seconds("cleanup"), 3))
        # Throughput of the size-dependent phases only: fixed costs (creating and dropping
        # the scratch database, the checks) do not grow with the backup, so the forecast
        # adds them once.
        stored = result.bytes_fetched or 0
        moving = phases.seconds("fetch and verify") + phases.seconds("restore")
        if status == RunStatus.SUCCEEDED and stored and moving > 0:
            result.throughput_bps = stored / moving
        if error:
            self.test.append_log(error)
        self.test.append_log(f"{status} in {elapsed:.1f} s")
        self.test.finish(status, error[:5000], **result.as_fields())


def _restore_test(test: RestoreTest, secrets: list[str]):
    progress = _Progress(test, fenced_phases(test), test.started or timezone.now())
    tmp = make_work_dir(test, "dr-restore-test-")
    try:
        run = _backup_to_test(test)
        outcome = _restore_into_scratch(run, progress, tmp, secrets)
    except NeedsRetrieval as exc:
        progress.result.needs_retrieval = True
        progress.finish(RunStatus.FAILED, str(exc))
        return
    except (RecoveryFailure, RestoreError) as exc:
        progress.finish(RunStatus.FAILED, redact(str(exc), secrets))
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _record_outcome(run, progress, outcome)
    results = progress.result.checks
    bad = [c for c in results if c["outcome"] != Outcome.PASSED]
    if bad:
        names = ", ".join(f"{c['name']} {c['outcome'].replace('_', ' ')}" for c in bad)
        progress.finish(RunStatus.FAILED, f"verification: {names}")
        return
    if not results and artifact_kind(run) != "files":
        test.append_log("no verification checks are defined: only the restore itself was proven")
    progress.finish(RunStatus.SUCCEEDED)


def _backup_to_test(test: RestoreTest) -> BackupRun:
    """The backup the test names, or the source's newest good one (pinned on the test)."""
    source, pinned = test.source, test.destination
    run = test.backup_run
    if pinned is not None:
        test.append_log(f"reading only the copy at {pinned.name}, as if every other copy were lost")
    if run is None:
        run = newest_good_backup(source, pinned)
        if run is None and pinned is not None:
            raise RecoveryFailure(
                f"{pinned.name} holds no live copy of a good backup of {source}: nothing to test"
            )
        if run is None:
            raise RecoveryFailure(f"{source} has no good backup with an intact copy to test")
        test.backup_run = run
        RestoreTest.objects.filter(pk=test.pk).update(backup_run=run)
    test.append_log(
        f"testing backup run #{run.pk} of {source} (data taken "
        f"{run.data_taken_at:%Y-%m-%d %H:%M:%S} UTC)"
        if run.data_taken_at
        else f"testing backup run #{run.pk} of {source}"
    )
    return run


def _restore_into_scratch(run: BackupRun, progress: _Progress, tmp: str, secrets) -> VerifyOutcome:
    kind = artifact_kind(run)
    streamed = None
    if kind == "postgresql" and restore_jobs() == 1 and not is_directory_dump(run):
        streamed = _streamed_postgres_test(run, progress.test, progress.phases, secrets)
    if streamed is not None:
        outcome, copy, fetched_bytes = streamed
        progress.result.copy_used = copy_label(copy)
        progress.result.copy_destination_id = copy.destination_id
        progress.result.bytes_fetched = fetched_bytes
    else:
        outcome = _unpacked_test(run, progress, kind, tmp, secrets)
    if kind == "postgresql":
        _check_globals(run, progress.test, tmp, outcome)
    return outcome


def _record_outcome(run: BackupRun, progress: _Progress, outcome: VerifyOutcome):
    """Put what the scratch restore proved on the result, and in the test's log."""
    test, result = progress.test, progress.result
    result.checks = [c.as_dict() for c in outcome.checks]
    result.integrity = outcome.integrity[:300]
    result.bytes_restored = outcome.restored_bytes
    result.warnings = outcome.warnings
    for warning in outcome.warnings:
        test.append_log(f"note: {warning}")
    if outcome.heartbeat_at:
        result.data_at, result.data_basis = outcome.heartbeat_at, DataBasis.HEARTBEAT
    elif run.data_taken_at:
        result.data_at, result.data_basis = run.data_taken_at, DataBasis.BACKUP
    if result.data_at:
        result.data_age = max(timedelta(0), progress.started - result.data_at)
    for check in result.checks:
        test.append_log(f"check {check['name']}: {check['outcome']} ({check['detail']})")


def _check_globals(run, test, tmp: str, outcome: VerifyOutcome):
    """The roles and tablespaces stored with the backup (globals: true) must read back too."""
    if globals_info(run) is None:
        return
    path = os.path.join(tmp, "globals.sql")
    try:
        fetch_globals(run, path)
        size = os.path.getsize(path)
        test.append_log(f"roles and tablespaces read back and verified ({size} bytes)")
    except (ValueError, OSError) as exc:
        outcome.warnings.append(f"roles and tablespaces could not be read back: {exc}")
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _verify_postgres(test: RestoreTest, artifact, phases: Phases, secrets, jobs: int):
    """Restore `artifact` (a path, or a function feeding pg_restore's stdin) into scratch."""
    server = scratch_server()
    secrets.extend(server.secrets())
    return verify_postgres(
        artifact,
        server,
        test.source.effective_checks,
        previous_observations(test.source, test.pk),
        phases,
        jobs=jobs,
        scratch_prefix=scratch_prefix(),
        before_create=lambda name: record_database(test, "scratch", name),
        cancelled=lambda: test.lease_lost,  # reaped: stop pg_restore now
    )


def _unpacked_test(run, progress: _Progress, kind: str, tmp: str, secrets) -> VerifyOutcome:
    """Unpack the best readable copy to a file (trying each copy), then restore from it."""
    test, phases = progress.test, progress.phases
    source = test.source
    with phases.phase("fetch and verify"):
        fetched = fetch_verified(run, tmp, test.append_log, secrets, test.destination)
    progress.result.copy_used = copy_label(fetched.copy)
    progress.result.copy_destination_id = fetched.copy.destination_id
    progress.result.bytes_fetched = fetched.bytes_fetched
    test.append_log(f"restoring the {kind} artifact into scratch")
    if kind == "postgresql":
        jobs = dump_jobs(run, restore_jobs())
        if is_directory_dump(run):
            test.append_log(f"a parallel dump: pg_restore -j {jobs} on its directory")
        outcome = _verify_postgres(test, fetched.path, phases, secrets, jobs=jobs)
    elif kind == "sqlite":
        outcome = verify_sqlite(
            fetched.path, source.effective_checks, previous_observations(source, test.pk), phases
        )
    elif kind == "files":
        count = (run.manifest or {}).get("file_count")
        outcome = verify_files(
            fetched.path,
            phases,
            expected_count=count if isinstance(count, int) else None,
            tmp_dir=tmp,
        )
    else:
        raise RecoveryFailure(f"unknown artifact kind {kind!r}")
    remove_fetched(fetched.path)
    return outcome


def _streamed_postgres_test(
    run, test, phases, secrets
) -> tuple[VerifyOutcome, BackupCopy, int] | None:
    """Serial pg_restore fed straight from the best copy: reading, verifying, decrypting and
    restoring overlap. pg_restore only ever sees authenticated chunks; a bad artifact kills
    it and the scratch database is dropped. Returns (outcome, copy, stored bytes), or None
    when the stream failed on the copy itself, so the copy-by-copy path names the cause.
    """
    readable, _ = rank_copies(run, test.destination)
    if not readable:
        return None
    copy = readable[0]
    try:
        master_keys = keyring.ring()
        spec = copy.destination.to_spec()
    except keyring.KeyRingError:
        return None
    secrets.extend(spec.secrets.values())
    info: dict = {}

    def feed(stdin):
        info.update(read_copy(open_destination(spec), copy, stdin, master_keys, run.sha256))

    test.append_log(f"streaming {copy.destination.name} into a serial pg_restore in scratch")
    try:
        outcome = _verify_postgres(test, feed, phases, secrets, jobs=1)
    except (EngineError, OSError) as exc:
        test.append_log(
            f"streamed read of {copy.destination.name} failed ({redact(str(exc), secrets)}); "
            "checking every copy"
        )
        return None
    test.append_log(
        f"read {copy.destination.name}: {info['bytes_in']} stored bytes, SHA-256 and "
        "authentication verified while restoring"
    )
    return outcome, copy, int(info["bytes_in"])
