"""One code path for restore tests and restores: tasks, commands and views all end here.

Load the rows, pick the backup and its best copy, let the backups engine stream and
verify the artifact into a temporary file, let the recovery engine restore and check
it, record every phase, finish the run. Secrets are revealed only here and redacted
from every message.
"""

import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.models import BackupCopy, BackupRun, Source
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact
from dr_portal.runs import ACTIVE, IllegalTransition, LeaseLost, RunStatus
from recovery import restore_targets
from recovery.engine import files as file_engine
from recovery.engine import heartbeat
from recovery.engine.checks import Outcome
from recovery.engine.pg import PgServer, RestoreError
from recovery.engine.staging import create_private
from recovery.engine.verify import (
    Phases,
    VerifyOutcome,
    verify_files,
    verify_postgres,
    verify_sqlite,
)
from recovery.models import (
    DataBasis,
    FailureType,
    Restore,
    RestoreTarget,
    RestoreTest,
    RTOTarget,
    TargetKind,
    Trigger,
)

log = logging.getLogger(__name__)

DEFAULT_SCRATCH_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class RecoveryFailure(Exception):
    """An expected failure: the message names the cause and holds no secret."""


class NeedsRetrieval(RecoveryFailure):
    """Only archive-class copies exist: they must be retrieved (hours) before reading."""


class Busy(Exception):
    """The source already has an active restore test or restore."""


# --- choosing what to read -----------------------------------------------------


def scratch_server() -> PgServer:
    return PgServer.from_url(settings.DR_SCRATCH_DATABASE_URL or DEFAULT_SCRATCH_URL)


def _setting(name: str):
    """A recovery knob from settings (tests) or the environment (deployments)."""
    return getattr(settings, name, None) or os.environ.get(name) or None


def restore_jobs() -> int:
    """Parallel jobs for pg_restore (DR_RESTORE_JOBS, default half the cores, at most 4).

    Index builds compete with the restore for the same cores; on 2 cores a serial restore
    measured as fast as `-j 2` (bench/RESULTS.md). With one job a restore test streams the
    artifact straight into pg_restore instead of unpacking it to a file first.
    """
    default = max(1, min(4, (os.cpu_count() or 1) // 2))
    value = _setting("DR_RESTORE_JOBS")
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        return default


def work_dir() -> str | None:
    """Where artifacts are unpacked (DR_RESTORE_TMP_DIR; None: the system temporary directory)."""
    value = _setting("DR_RESTORE_TMP_DIR")
    return str(value) if value else None


def make_work_dir(run, prefix: str) -> str:
    """A private (0700) directory for one run's unpacked artifact, recorded on the run
    before it exists, so the reaper removes it when the worker dies mid-run."""
    import secrets as _secrets

    root = work_dir() or tempfile.gettempdir()
    path = os.path.join(root, f"{prefix}{run.pk}-{_secrets.token_hex(4)}")
    run.record_temporary(kind="path", path=path, host=socket.gethostname())
    os.mkdir(path, 0o700)
    return path


def fenced_phases(run) -> Phases:
    """Phases that re-check the lease as each starts (fencing), except clean-up, which runs
    whoever holds the run."""

    def on_phase(name):
        if name == "cleanup":
            run.beat(name)
        else:
            run.enter_phase(name)

    return Phases(on_phase=on_phase)


def record_database(run, server: str, name: str):
    """Record a scratch ("scratch") or staging ("target") database before creating it."""
    run.record_temporary(kind="database", server=server, name=name)


def good_backups(source: Source):
    return BackupRun.objects.good().filter(source=source)


def newest_good_backup(source: Source) -> BackupRun | None:
    return good_backups(source).order_by("-data_taken_at", "-finished", "-pk").first()


def newest_proven_backup(source: Source) -> BackupRun | None:
    """The newest backup that passed a restore test (the default for a restore)."""
    return (
        good_backups(source)
        .filter(restore_tests__status=RunStatus.SUCCEEDED)
        .order_by("-data_taken_at", "-finished", "-pk")
        .first()
    )


def _copy_rank(copy: BackupCopy) -> tuple:
    dest = copy.destination
    if dest.kind == "local":
        return (0, copy.pk)
    if dest.is_archive or copy.storage_class in ("GLACIER", "DEEP_ARCHIVE"):
        return (2, copy.pk)
    return (1, copy.pk)


def rank_copies(run: BackupRun) -> tuple[list[BackupCopy], list[BackupCopy]]:
    """(readable copies best first: local, then S3; archive-class copies needing retrieval)."""
    copies = sorted(
        run.copies.live().select_related("destination"),
        key=_copy_rank,
    )
    readable = [c for c in copies if _copy_rank(c)[0] < 2]
    archived = [c for c in copies if _copy_rank(c)[0] == 2]
    return readable, archived


def artifact_kind(run: BackupRun) -> str:
    manifest = run.manifest or {}
    return manifest.get("source_kind") or manifest.get("kind") or run.source.kind


@dataclass
class Fetched:
    path: str
    copy: BackupCopy
    bytes_fetched: int


def fetch_verified(run: BackupRun, into_dir: str, log_line, secrets: list[str]) -> Fetched:
    """Stream the best copy through verification into a file; try the next copy on failure.

    Raises RecoveryFailure naming every copy's cause. When every copy held a bad artifact
    (not a missing one, not a key missing from the ring) the run is marked not restorable.
    """
    from backups.engine import ArtifactError, EngineError, open_destination, unpack_artifact

    readable, archived = rank_copies(run)
    if not readable:
        if archived:
            where = ", ".join(
                f"{c.destination.name} ({c.storage_class or 'archive'})" for c in archived
            )
            raise NeedsRetrieval(
                f"backup run #{run.pk} is only stored in archive storage ({where}): "
                "it needs a retrieval (hours) before it can be read; start one in S3, then test again"
            )
        raise RecoveryFailure(f"backup run #{run.pk} has no intact copy left to read")
    try:
        master_keys = keyring.ring()
    except keyring.KeyRingError as exc:
        raise RecoveryFailure(f"the key ring cannot be read: {exc}") from None
    problems, bad_artifact = [], 0
    for copy in readable:
        path = os.path.join(into_dir, f"artifact-{copy.pk}")
        try:
            spec = copy.destination.to_spec()
            secrets.extend(spec.secrets.values())
            store = open_destination(spec)
            if not store.exists(copy.location):
                copy.mark_lost(
                    f"missing at {copy.destination.name} (found by run #{run.pk}'s read)"
                )
                problems.append(
                    f"{copy.destination.name}: the artifact is missing; copy marked lost"
                )
                log_line(f"copy at {problems[-1]}")
                continue
            # Plaintext on disk: 0600, exclusive, never through a planted link, inside the
            # run's private 0700 directory; removed with it on every exit path.
            with os.fdopen(create_private(path), "wb") as out:
                reader = store.open_read(copy.location)
                try:
                    info = unpack_artifact(reader, out, master_keys, expected_sha256=run.sha256)
                finally:
                    close = getattr(reader, "close", None)
                    if close:
                        close()
            log_line(
                f"read {copy.destination.name}: {info['bytes_in']} stored bytes, SHA-256 and "
                f"{'authentication' if info.get('encrypted') else 'checksum'} verified"
            )
            return Fetched(path, copy, int(info["bytes_in"]))
        except ArtifactError as exc:
            message = redact(str(exc), secrets)
            if "not in the key ring" not in message:
                bad_artifact += 1
                copy.mark_lost(f"unreadable: {message}")
            problems.append(f"{copy.destination.name}: {message}")
        except (EngineError, OSError, keyring.KeyRingError) as exc:
            problems.append(
                f"{copy.destination.name}: {redact(str(exc), secrets) or type(exc).__name__}"
            )
        log_line(f"copy at {problems[-1]}")
        if os.path.exists(path):
            os.unlink(path)
    message = "; ".join(problems)
    if bad_artifact == len(readable):
        BackupRun.objects.filter(pk=run.pk).update(
            restorable=False,
            not_restorable_reason=f"restore test found a bad artifact: {message}"[:2000],
        )
        log_line(f"backup run #{run.pk} marked not restorable")
    raise RecoveryFailure(f"no copy of backup run #{run.pk} could be read: {message}")


def previous_observations(source: Source, before_pk: int | None = None) -> dict[str, str]:
    """For the canary: each check's newest observed value from a test where it passed."""
    found: dict[str, str] = {}
    tests = RestoreTest.objects.filter(
        source=source, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
    )
    if before_pk:
        tests = tests.exclude(pk=before_pk)
    for checks in tests.order_by("-finished", "-pk").values_list("checks", flat=True)[:50]:
        for check in checks or []:
            name = check.get("name")
            if name and name not in found and check.get("outcome") == Outcome.PASSED:
                found[name] = check.get("observed")
    return found


# --- restore tests ---------------------------------------------------------------


def start_restore_test(
    source: Source, *, backup_run: BackupRun | None = None, trigger=Trigger.MANUAL, user=None
) -> RestoreTest:
    """Create a queued test unless one of this source is already queued or running."""
    active = RestoreTest.objects.filter(source=source, status__in=list(ACTIVE)).first()
    if active is not None:
        raise Busy(f"restore test #{active.pk} of {source} is already {active.status}")
    try:  # the read above names the culprit; the constraint is what holds under a race
        with transaction.atomic():
            return RestoreTest.objects.create(
                source=source,
                backup_run=backup_run,
                trigger=trigger,
                requested_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        raise Busy(f"a restore test of {source} is already queued or running") from None


def enqueue_restore_test(test: RestoreTest):
    from dr_portal.lib.queue import enqueue

    enqueue("recovery.tasks.run_restore_test", test.pk, group=f"restore tests {test.source_id}")


def execute_restore_test(test: RestoreTest) -> RestoreTest:
    """Run a queued restore test to its end; safe to call twice (the claim decides)."""
    return _execute(test, _restore_test)


def _execute(run, body):
    """claim → body(run, secrets) under a heartbeat → temporaries removed, whatever happens.

    The skeleton restore tests and restores share: `body` fetches, restores, checks and
    finishes the run; an unexpected exception fails it (secrets redacted), a lost lease
    leaves it to the reaper.
    """
    if not run.claim():
        log.info("%s was already claimed (%s)", run, run.status)
        return run
    secrets: list[str] = []
    try:
        with run.heartbeat():
            body(run, secrets)
    except (LeaseLost, IllegalTransition) as exc:  # reaped: the run is not ours to finish
        log.warning("%s stopped: %s", run, exc)
        run.append_log(f"stopped: {exc}")
    except Exception as exc:
        log.exception("%s failed unexpectedly", run)
        run.fail_unexpectedly(exc, secrets)
    finally:
        _remove_temporaries(run)
    run.refresh_from_db()
    return run


def _remove_temporaries(run):
    """What this run recorded is gone when it ends, whatever the exit path (idempotent)."""
    from recovery.cleanup import remove_temporaries

    try:
        remove_temporaries(run)
    except Exception:
        log.exception("%s: removing its temporaries failed; the sweep will retry", run)


def _restore_test(test: RestoreTest, secrets: list[str]):
    source = test.source
    started = test.started or timezone.now()
    clock = time.monotonic()
    phases = fenced_phases(test)
    fields: dict = {}
    outcome: VerifyOutcome | None = None
    tmp = make_work_dir(test, "dr-restore-test-")
    try:
        run = test.backup_run
        if run is None:
            run = newest_good_backup(source)
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
        kind = artifact_kind(run)
        streamed = None
        if kind == "postgresql" and restore_jobs() == 1:
            streamed = _streamed_postgres_test(run, test, phases, secrets)
        if streamed is not None:
            outcome, copy, fetched_bytes = streamed
            fields["copy_used"] = f"{copy.destination.name}: {copy.location}"[:300]
            fields["bytes_fetched"] = fetched_bytes
        else:
            outcome = _unpacked_test(run, test, kind, tmp, phases, fields, secrets)
        if kind == "postgresql":
            _check_globals(run, test, tmp, outcome)
    except NeedsRetrieval as exc:
        fields["needs_retrieval"] = True
        _finish_test(test, RunStatus.FAILED, str(exc), phases, fields, started, clock)
        return
    except (RecoveryFailure, RestoreError) as exc:
        _finish_test(
            test, RunStatus.FAILED, redact(str(exc), secrets), phases, fields, started, clock
        )
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results = [c.as_dict() for c in outcome.checks]
    fields.update(
        checks=results,
        integrity=outcome.integrity[:300],
        bytes_restored=outcome.restored_bytes,
        warnings=outcome.warnings,
    )
    for warning in outcome.warnings:
        test.append_log(f"note: {warning}")
    if outcome.heartbeat_at:
        fields.update(data_at=outcome.heartbeat_at, data_basis=DataBasis.HEARTBEAT)
    elif run.data_taken_at:
        fields.update(data_at=run.data_taken_at, data_basis=DataBasis.BACKUP)
    if fields.get("data_at"):
        fields["data_age"] = max(timedelta(0), started - fields["data_at"])
    for check in results:
        test.append_log(f"check {check['name']}: {check['outcome']} ({check['detail']})")
    bad = [c for c in results if c["outcome"] != Outcome.PASSED]
    if bad:
        names = ", ".join(f"{c['name']} {c['outcome'].replace('_', ' ')}" for c in bad)
        _finish_test(
            test, RunStatus.FAILED, f"verification: {names}", phases, fields, started, clock
        )
        return
    if not results and artifact_kind(run) != "files":
        test.append_log("no verification checks are defined: only the restore itself was proven")
    _finish_test(test, RunStatus.SUCCEEDED, "", phases, fields, started, clock)


def _check_globals(run, test, tmp: str, outcome: VerifyOutcome):
    """The roles and tablespaces stored with the backup (globals: true) must read back too."""
    from backups.globals import fetch_globals, globals_info

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


def _unpacked_test(run, test, kind, tmp, phases, fields, secrets) -> VerifyOutcome:
    """Unpack the best readable copy to a file (trying each copy), then restore from it."""
    source = test.source
    with phases.phase("fetch and verify"):
        fetched = fetch_verified(run, tmp, test.append_log, secrets)
    fields["copy_used"] = f"{fetched.copy.destination.name}: {fetched.copy.location}"[:300]
    fields["bytes_fetched"] = fetched.bytes_fetched
    test.append_log(f"restoring the {kind} artifact into scratch")
    if kind == "postgresql":
        server = scratch_server()
        secrets.extend(server.secrets())
        outcome = verify_postgres(
            fetched.path,
            server,
            source.effective_checks,
            previous_observations(source, test.pk),
            phases,
            jobs=restore_jobs(),
            scratch_prefix=_setting("DR_SCRATCH_PREFIX"),
            before_create=lambda name: record_database(test, "scratch", name),
            cancelled=lambda: test.lease_lost,  # reaped: stop pg_restore now
        )
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
    os.unlink(fetched.path)
    return outcome


def _streamed_postgres_test(run, test, phases, secrets):
    """Serial pg_restore fed straight from the best copy: reading, verifying, decrypting and
    restoring overlap. pg_restore only ever sees authenticated chunks; a bad artifact kills
    it and the scratch database is dropped. Returns (outcome, copy, stored bytes), or None
    when the stream failed on the copy itself, so the copy-by-copy path names the cause.
    """
    from backups.engine import EngineError, open_destination, unpack_artifact

    readable, _ = rank_copies(run)
    if not readable:
        return None
    copy = readable[0]
    try:
        master_keys = keyring.ring()
        spec = copy.destination.to_spec()
    except keyring.KeyRingError:
        return None
    secrets.extend(spec.secrets.values())
    server = scratch_server()
    secrets.extend(server.secrets())
    info: dict = {}

    def feed(stdin):
        reader = open_destination(spec).open_read(copy.location)
        try:
            info.update(unpack_artifact(reader, stdin, master_keys, expected_sha256=run.sha256))
        finally:
            close = getattr(reader, "close", None)
            if close:
                close()

    test.append_log(f"streaming {copy.destination.name} into a serial pg_restore in scratch")
    try:
        outcome = verify_postgres(
            feed,
            server,
            test.source.effective_checks,
            previous_observations(test.source, test.pk),
            phases,
            jobs=1,
            scratch_prefix=_setting("DR_SCRATCH_PREFIX"),
            before_create=lambda name: record_database(test, "scratch", name),
            cancelled=lambda: test.lease_lost,  # reaped: stop pg_restore now
        )
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


def _finish_test(test, status, error, phases, fields, started, clock):
    elapsed = time.monotonic() - clock
    fields["phases"] = phases.items
    fields["rto"] = timedelta(seconds=round(elapsed, 3))
    # Throughput of the size-dependent phases only: fixed costs (creating and dropping the
    # scratch database, the checks) do not grow with the backup, so the forecast adds them once.
    stored = fields.get("bytes_fetched") or 0
    moving = phases.seconds("fetch and verify") + phases.seconds("restore")
    if status == RunStatus.SUCCEEDED and stored and moving > 0:
        fields["throughput_bps"] = stored / moving
    if error:
        test.append_log(error)
    test.append_log(f"{status} in {elapsed:.1f} s")
    test.finish(status, error[:5000], **fields)


# --- restores --------------------------------------------------------------------


def target_kind_for(kind: str) -> str:
    return {"postgresql": TargetKind.DATABASE, "sqlite": TargetKind.FILE}.get(
        kind, TargetKind.DIRECTORY
    )


def source_target(source: Source) -> tuple[str, str, str]:
    """(target kind, target, password) of the source itself."""
    spec = source.to_spec()
    if spec.kind == "postgresql":
        c = spec.config
        url = f"postgresql://{c['user']}@{c['host']}:{c.get('port') or 5432}/{c['database']}"
        return TargetKind.DATABASE, url, spec.password
    return target_kind_for(spec.kind), spec.config["path"], ""


def validate_target(kind: str, target: str, *, onto_source: bool = False) -> tuple[str, str]:
    """Return (normalised target without password, password); raise ValueError with a reason."""
    from django.core.exceptions import ValidationError

    from dr_portal.lib.paths import check_allowed_path

    if kind == TargetKind.DATABASE:
        server = PgServer.from_url(target)
        if server.dbname in ("postgres", "template0", "template1"):
            raise ValueError(
                f"{server.dbname} is a system database; name a database to restore into"
            )
        return server.public_url(), server.password
    if not onto_source and os.path.realpath(target) != os.path.normpath(target):
        # A link planted at (or above) the path would send the restore somewhere else.
        raise ValueError(f"{target} goes through a symbolic link; give the real path")
    try:
        path = check_allowed_path(target)
    except ValidationError as exc:
        if onto_source:
            path = Path(target)
        else:
            raise ValueError(" ".join(exc.messages)) from None
    if kind == TargetKind.FILE and path.is_dir():
        raise ValueError(f"{path} is a directory; give the SQLite file's path")
    if kind == TargetKind.DIRECTORY and path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; give a directory")
    if not path.parent.is_dir():
        raise ValueError(f"{path.parent} does not exist")
    return str(path), ""


def start_restore(
    source: Source,
    *,
    target: str = "",
    restore_target: RestoreTarget | None = None,
    database_name: str = "",
    onto_source: bool = False,
    backup_run: BackupRun | None = None,
    failure_type: str = FailureType.DATABASE_FAILURE,
    declared_at=None,
    overwrite: bool = False,
    user=None,
) -> Restore:
    """Validate and create a queued restore; raise ValueError (bad input), NotAllowed or Busy.

    One of: `restore_target` (registered; `database_name` for a pattern), a free-form
    `target` (URL or path), or `onto_source`. `user` is the person asking, held to
    recovery.restore_targets.check_allowed; None is a trusted caller (manage.py restore).
    """
    if sum(bool(x) for x in (target, restore_target, onto_source)) > 1:
        raise ValueError("choose one: a registered target, a free-form target or the source")
    restore_targets.check_allowed(
        user,
        source=source,
        restore_target=restore_target,
        free_form=bool(target),
        onto_source=onto_source,
        overwrite=overwrite,
    )
    data_kind = backup_run and artifact_kind(backup_run) or source_kind(source)
    kind = target_kind_for(data_kind)
    if onto_source and source.is_portal_db:
        raise ValueError(
            "the portal's own database cannot be restored onto itself from inside the portal "
            "(this restore's own record lives there): restore it to a new database or file, "
            "then swap it in with the portal stopped"
        )
    if onto_source:
        kind, target, password = source_target(source)
        target, _ = validate_target(kind, target, onto_source=True)
    elif restore_target is not None:
        target, password = registered_target(source, data_kind, restore_target, database_name)
    else:
        if not target:
            raise ValueError(
                "give a target: a registered restore target, or (managers) a PostgreSQL URL, "
                "a file path or a directory"
            )
        target, password = validate_target(kind, target)
        if is_source_target(source, target):
            raise ValueError("that is the source itself: choose “onto the source” to overwrite it")
    if not onto_source:
        conflict = target_conflict(kind, target)
        if conflict:
            raise ValueError(conflict)
    if failure_type not in FailureType.values:
        raise ValueError(f"unknown failure type {failure_type!r}")
    if backup_run is not None and backup_run.source_id != source.pk:
        raise ValueError(f"backup run #{backup_run.pk} is not a backup of {source}")
    active = Restore.objects.filter(source=source, status__in=list(ACTIVE)).first()
    if active is not None:
        raise Busy(f"restore #{active.pk} of {source} is already {active.status}")
    try:  # the read above names the culprit; the constraints are what hold under a race
        with transaction.atomic():
            return Restore.objects.create(
                source=source,
                backup_run=backup_run,
                failure_type=failure_type,
                declared_at=declared_at or timezone.now(),
                target_kind=kind,
                target=target,
                target_password=password or "",
                restore_target=restore_target,
                onto_source=onto_source,
                overwrite_confirmed=overwrite or onto_source,
                rto_target=RTOTarget.for_failure(failure_type),
                requested_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        raise Busy(f"a restore of {source} or to {target} is already queued or running") from None


def registered_target(source: Source, data_kind: str, restore_target: RestoreTarget, database=""):
    """(target URL or path, sealed password) of a registered target for `source`'s backup."""
    if restore_target.kind != data_kind:
        raise ValueError(
            f"target {restore_target.name} receives {restore_target.get_kind_display()} "
            f"backups, not {data_kind}"
        )
    if (
        not restore_targets.compatible_targets(source, data_kind)
        .filter(pk=restore_target.pk)
        .exists()
    ):
        raise ValueError(f"target {restore_target.name} is not registered for {source}")
    if restore_target.kind == RestoreTarget.Kind.POSTGRESQL:
        server = PgServer(
            host=restore_target.host,
            port=restore_target.port or 5432,
            user=restore_target.user or "postgres",
            dbname=restore_targets.database_for(restore_target, database),
        )
        # The sealed secret is copied to the restore, never revealed here.
        return server.public_url(), restore_target.password
    path, _ = validate_target(target_kind_for(data_kind), restore_target.path)
    return path, ""


def target_conflict(kind: str, target: str) -> str:
    """Why `target` may not be written ("" if it may): it overlaps a source or the portal."""
    sources = list(Source.objects.all())
    if kind == TargetKind.DATABASE:
        server = PgServer.from_url(target)
        return restore_targets.database_conflict(server.host, server.port, server.dbname, sources)
    return restore_targets.path_conflict(Path(target).resolve(), sources)


def source_kind(source: Source) -> str:
    if source.is_portal_db:
        return source.portal_db_spec_config()[0]
    return source.kind


def enqueue_restore(restore: Restore):
    from dr_portal.lib.queue import enqueue

    enqueue("recovery.tasks.run_restore", restore.pk, group=f"restores {restore.source_id}")


def execute_restore(restore: Restore) -> Restore:
    """Run a queued restore to its end; safe to call twice (the claim decides)."""
    return _execute(restore, _restore)


def _restore(restore: Restore, secrets: list[str]):
    source = restore.source
    phases = fenced_phases(restore)
    fields: dict = {}
    tmp = make_work_dir(restore, "dr-restore-")
    try:
        run = restore.backup_run or newest_proven_backup(source)
        if run is None:
            raise RecoveryFailure(
                f"{source} has no backup that passed a restore test; choose a backup explicitly"
            )
        if restore.backup_run_id is None:
            restore.backup_run = run
            Restore.objects.filter(pk=restore.pk).update(backup_run=run)
        restore.append_log(f"restoring backup run #{run.pk} of {source} to {restore.target}")
        password = restore.target_password.reveal() if restore.target_password else ""
        secrets.append(password)
        if restore.restore_target_id:
            _reach_registered_target(restore, password)
        if not restore.overwrite_confirmed and _target_exists(restore, password):
            raise RecoveryFailure(
                f"{restore.target} already exists and overwriting it was not confirmed: "
                "nothing was changed (a manager can confirm replacing it)"
            )
        with phases.phase("fetch and verify"):
            fetched = fetch_verified(run, tmp, restore.append_log, secrets)
        fields["copy_used"] = f"{fetched.copy.destination.name}: {fetched.copy.location}"[:300]
        fields["bytes_fetched"] = fetched.bytes_fetched
        kind = artifact_kind(run)
        if target_kind_for(kind) != restore.target_kind:
            raise RecoveryFailure(f"a {kind} backup cannot be restored to a {restore.target_kind}")
        previous = previous_observations(source)
        if kind == "postgresql":
            result = _restore_postgres(restore, fetched.path, password, phases, previous)
        elif kind == "sqlite":
            result = _restore_sqlite(restore, fetched.path, phases, previous)
        else:
            result = _restore_files(restore, fetched.path, phases)
        checks_done = timezone.now()
        fields.update(result)
        if result.get("data_at") is None and run.data_taken_at:
            fields.update(data_at=run.data_taken_at, data_basis=DataBasis.BACKUP)
        fields["rto"] = checks_done - restore.declared_at
    except (RecoveryFailure, RestoreError, keyring.KeyRingError) as exc:
        fields["phases"] = phases.items
        message = _public_error(restore, redact(str(exc), secrets))
        restore.append_log(message)
        restore.finish(RunStatus.FAILED, message[:5000], **fields)
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fields["phases"] = phases.items
    if fields.get("kept_aside"):
        restore.append_log(f"the previous data was kept aside at {fields['kept_aside']}")
    bad = [c for c in fields.get("checks", []) if c["outcome"] != Outcome.PASSED]
    if bad:
        names = ", ".join(f"{c['name']} {c['outcome'].replace('_', ' ')}" for c in bad)
        message = f"restored, but verification on the target did not pass: {names}"
        fields.pop("rto", None)  # service is not verified: no RTO achieved
        restore.append_log(message)
        restore.finish(RunStatus.FAILED, message, **fields)
        return
    restore.append_log(f"verified on the target; RTO {fields['rto']}")
    restore.finish(RunStatus.SUCCEEDED, "", **fields)


def _target_name(restore: Restore) -> str:
    target = restore.restore_target
    return target.name if target else "(registration deleted)"


def _reach_registered_target(restore: Restore, password: str):
    """Connect before anything else: the people restoring learn only that it failed.

    The detail (host, port, the server's answer) goes to the server log, so a target's
    error text is no oracle for probing hosts.
    """
    if restore.target_kind != TargetKind.DATABASE:
        return
    server = PgServer.from_url(restore.target, password=password).with_db("postgres")
    try:
        with server.connect():
            pass
    except RestoreError as exc:
        log.warning("restore #%s: %s", restore.pk, redact(str(exc), [password]))
        raise RecoveryFailure(f"could not connect to target {_target_name(restore)}") from None


def _public_error(restore: Restore, message: str) -> str:
    """A connection failure to a registered target, without the server's detail."""
    if restore.restore_target_id and message.startswith("cannot connect"):
        log.warning("restore #%s: %s", restore.pk, message)
        return f"could not connect to target {_target_name(restore)}"
    return message


def _target_exists(restore: Restore, password: str) -> bool:
    if restore.target_kind == TargetKind.DATABASE:
        from recovery.engine import pg

        target = PgServer.from_url(restore.target, password=password)
        return pg.database_exists(target.with_db("postgres"), target.dbname)
    return os.path.lexists(restore.target)


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d%H%M%S")


def _ownership_plan(restore, admin: PgServer, toc) -> tuple[bool, list[str]]:
    """(keep owners and privileges as pg_restore does?, warnings saying why not)."""
    from recovery.engine import pg, pgarchive

    missing = pg.missing_roles(admin, pgarchive.referenced_roles(toc) if toc else set())
    if missing:
        from backups.globals import globals_info

        run = restore.backup_run
        how = "create the roles (pg_dumpall --globals-only of the source's server)"
        if run is not None and globals_info(run):
            how = (
                "this backup holds them: manage.py restore_globals "
                f"{run.pk} --to {admin.public_url()} --yes"
            )
        return False, [
            f"roles the backup names do not exist on {admin.host}:{admin.port}: "
            f"{', '.join(missing)}; objects are owned by {admin.user}, and privileges "
            f"naming those roles were not restored ({how}, then restore again to keep them)"
        ]
    if not pg.is_superuser(admin):
        return False, [
            f"{admin.user} is not a superuser, so it cannot give objects to their owners: "
            f"objects are owned by {admin.user}; privileges were applied where it could"
        ]
    return True, []


def _restore_postgres(restore, archive, password, phases, previous) -> dict:
    """Restore into <name>_restoring_<ts>, check it, then swap: the old database is kept aside.

    The staging database is created as the archive describes it (encoding, locale), then
    gets its owner, privileges, settings and comment. Object owners and privileges are
    restored as pg_restore does when every role the archive names exists on the target
    (and we are superuser); otherwise objects belong to the restoring user, every
    privilege that can apply is applied one by one, and the warnings name the rest.
    """
    from recovery.engine import pg, pgarchive
    from recovery.engine.check_role import run_confined_checks

    target = PgServer.from_url(restore.target, password=password)
    admin = target.with_db("postgres")
    stamp = _stamp()
    staging = pg.check_name(f"{target.dbname[:40]}_restoring_{stamp}")
    result: dict = {}
    warnings: list[str] = []
    toc = pgarchive.toc_of_file(archive)
    definition = pgarchive.definition(toc) if toc else None
    if definition is None:
        warnings.append(pgarchive.NO_DEFINITION)
    keep_ownership, notes = _ownership_plan(restore, admin, toc)
    warnings += notes
    with phases.phase("restore"):
        record_database(restore, "target", staging)
        warnings += pg.create_database(admin, staging, definition)
        try:
            pg.pg_restore(
                archive,
                target.with_db(staging),
                jobs=restore_jobs(),
                keep_ownership=keep_ownership,
                cancelled=lambda: restore.lease_lost,  # reaped: stop pg_restore now
            )
            if not keep_ownership and toc is not None:  # REVOKE ... FROM PUBLIC stays
                warnings += pg.restore_privileges(target.with_db(staging), toc)
            # Onto the source the subscriptions stay as pg_restore leaves them (disabled,
            # naming their slot, ready to be enabled); a new database must never take the
            # source's slot.
            warnings += pg.neutralise_subscriptions(
                target.with_db(staging), keep_slot=restore.onto_source
            )
            if definition is not None:
                warnings += pg.apply_properties(admin, staging, definition, scratch=False)
        except RestoreError as exc:
            try:
                pg.drop_database(admin, staging)
            except RestoreError as cleanup:  # never hide the first error; name both
                raise RestoreError(f"{exc}; and the staging database stays: {cleanup}") from None
            raise
    with phases.phase("switch over"):
        if pg.database_exists(admin, target.dbname):
            aside = pg.check_name(f"{target.dbname[:40]}_before_restore_{stamp}")
            pg.rename_database(admin, target.dbname, aside)
            result["kept_aside"] = target.with_db(aside).public_url()
        pg.rename_database(admin, staging, target.dbname)
    result["warnings"] = warnings
    for warning in warnings:
        restore.append_log(f"note: {warning}")
    with phases.phase("checks"):
        with target.connect() as conn:
            beat = heartbeat.read_pg(conn)
        checks = run_confined_checks(
            target, restore.source.effective_checks, previous, scratch=False
        )
        result["checks"] = [c.as_dict() for c in checks]
    if beat:
        result.update(data_at=beat, data_basis=DataBasis.HEARTBEAT)
    return result


def _restore_sqlite(restore, unpacked, phases, previous) -> dict:
    from recovery.engine.checks import open_sqlite_confined, run_checks, sqlite_query
    from recovery.engine.sqlite_restore import restore_sqlite

    target = _own_path(restore)
    result: dict = {}
    with phases.phase("restore") as phase:
        done = restore_sqlite(unpacked, str(target), _stamp(), busy_timeout=sqlite_busy_timeout())
        phase["detail"] = "; ".join([done.method, *done.notes])[:500]
        for note in done.notes:
            restore.append_log(note)
        if done.kept_aside:
            result["kept_aside"] = done.kept_aside
    with phases.phase("checks"):
        conn = open_sqlite_confined(str(target))
        try:
            beat = heartbeat.read_sqlite(conn)
            result["checks"] = [
                c.as_dict()
                for c in run_checks(sqlite_query(conn), restore.source.effective_checks, previous)
            ]
        finally:
            conn.close()
    if beat:
        result.update(data_at=beat, data_basis=DataBasis.HEARTBEAT)
    return result


def _restore_files(restore, tar_path, phases) -> dict:
    target = _own_path(restore)
    result: dict = {"checks": []}
    with phases.phase("restore") as phase:
        done = file_engine.restore_tree(tar_path, str(target), _stamp())
        if done.in_place:
            phase["detail"] = f"{target} is a mount point: restored inside it"
            restore.append_log(
                f"{target} cannot be renamed (a mount point): its entries were moved into "
                f"{done.kept_aside} and the restored entries moved in"
            )
        if done.skipped:
            restore.append_log(
                "not restored (device files need root): " + ", ".join(done.skipped[:20])
            )
        if done.kept_aside:
            result["kept_aside"] = done.kept_aside
    return result


def _own_path(restore) -> Path:
    """The target path; for a restore onto the source, the file the source really names
    (a source configured through a symlink is restored where the backup read it)."""
    path = Path(restore.target)
    return path.resolve() if restore.onto_source else path


def sqlite_busy_timeout() -> float:
    """How long a SQLite restore waits for other connections' locks (DR_SQLITE_BUSY_TIMEOUT)."""
    try:
        return float(_setting("DR_SQLITE_BUSY_TIMEOUT") or 60)
    except ValueError:
        return 60.0


def is_source_target(source: Source, target: str) -> bool:
    """Does `target` (URL or path) name the source's own data?"""
    kind, own, _ = source_target(source)
    if kind == TargetKind.DATABASE:
        try:
            theirs = PgServer.from_url(target)
            mine = PgServer.from_url(own)
        except ValueError:
            return False
        return (theirs.host, theirs.port, theirs.dbname) == (mine.host, mine.port, mine.dbname)
    try:
        return Path(target).resolve() == Path(own).resolve()
    except (OSError, ValueError):
        return False
