"""Restores: put a backup onto a real target (registered, free-form, or the source itself).

start (validate the target, who may write it, create a queued row) → enqueue → execute
(claim, fetch the best copy verified, restore beside the target, swap it in keeping the
previous data aside, check on the target, record the RTO). The swaps themselves are the
recovery engine's (pg_swap, sqlite_restore, files).
"""

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from backups.globals import globals_info
from backups.models import BackupRun, Source
from dr_portal.lib import keyring
from dr_portal.lib.durations import format_duration
from dr_portal.lib.queue import enqueue
from dr_portal.lib.redact import redact
from dr_portal.lib.roles import MANAGER, has_role
from dr_portal.runs import ACTIVE, RunStatus
from recovery import partial as partial_restore
from recovery import restore_hooks, restore_targets
from recovery.copies import (
    artifact_kind,
    copy_label,
    dump_jobs,
    fetch_verified,
    newest_proven_backup,
)
from recovery.engine import files as file_engine
from recovery.engine import heartbeat, pg, pg_swap
from recovery.engine.check_role import run_confined_checks
from recovery.engine.checks import Outcome, open_sqlite_confined, run_checks, sqlite_query
from recovery.engine.pg import PgServer, RestoreError
from recovery.engine.sqlite_restore import restore_sqlite
from recovery.engine.verify import Phases
from recovery.models import DataBasis, FailureType, Restore, RestoreTarget, RTOTarget, TargetKind
from recovery.observations import previous_observations
from recovery.partial import Partial
from recovery.runner import Busy, RecoveryFailure, RunResult, execute, fenced_phases
from recovery.targeting import resolve_target, source_kind, target_kind_for
from recovery.workspace import make_work_dir, record_database, restore_jobs, sqlite_busy_timeout

__all__ = [
    "Busy",
    "Partial",
    "RestoreResult",
    "enqueue_restore",
    "execute_restore",
    "start_restore",
]

log = logging.getLogger(__name__)


@dataclass
class RestoreResult(RunResult):
    """What a restore records when it finishes (None: not recorded)."""

    copy_used: str | None = None
    bytes_fetched: int | None = None
    kept_aside: str | None = None
    warnings: list[str] | None = None
    checks: list[dict] | None = None
    data_at: datetime | None = None
    data_basis: str | None = None
    rto: timedelta | None = None
    phases: list[dict] | None = None


# --- starting ----------------------------------------------------------------------


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
    partial: "Partial | None" = None,
) -> Restore:
    """Validate and create a queued restore; raise ValueError (bad input), NotAllowed or Busy.

    One of: `restore_target` (registered; `database_name` for a pattern), a free-form
    `target` (URL or path), or `onto_source`. `user` is the person asking, held to
    recovery.restore_targets.check_allowed; None is a trusted caller (manage.py restore).
    `partial`: only chosen tables or paths (recovery.partial), written beside what exists.
    """
    if partial is not None:
        partial.validate(backup_run and artifact_kind(backup_run) or source_kind(source))
        if partial.replace and partial.tables and user is not None and not has_role(user, MANAGER):
            raise restore_targets.NotAllowed(
                "Only managers may replace live tables (restore them beside, under a schema "
                "or a suffix, instead)."
            )
        # chosen tables never replace anything (they get new names); chosen paths replace
        # existing ones (kept aside) only when confirmed
        overwrite = overwrite and bool(partial.paths)
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
    kind, target, password = resolve_target(
        source, data_kind, target, restore_target, database_name, onto_source
    )
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
                overwrite_confirmed=overwrite or (onto_source and partial is None),
                rto_target=RTOTarget.for_failure(failure_type),
                requested_by=user if getattr(user, "is_authenticated", False) else None,
                **(partial.fields() if partial else {}),
            )
    except IntegrityError:
        raise Busy(f"a restore of {source} or to {target} is already queued or running") from None


def enqueue_restore(restore: Restore):
    enqueue("recovery.tasks.run_restore", restore.pk, group=f"restores {restore.source_id}")


# --- executing ---------------------------------------------------------------------


def execute_restore(restore: Restore) -> Restore:
    """Run a queued restore to its end; safe to call twice (the claim decides)."""
    return execute(restore, _restore, after=restore_hooks.run_post_hooks)


def _restore(restore: Restore, secrets: list[str]):
    phases = fenced_phases(restore)
    result = RestoreResult()
    tmp = make_work_dir(restore, "dr-restore-")
    try:
        run = _backup_to_restore(restore)
        refusal = restore_hooks.run_pre_hooks(restore)
        if refusal:
            raise RecoveryFailure(refusal)
        password = _prepare_target(restore, secrets)
        with phases.phase("fetch and verify"):
            fetched = fetch_verified(run, tmp, restore.append_log, secrets)
        result.copy_used = copy_label(fetched.copy)
        result.bytes_fetched = fetched.bytes_fetched
        _restore_artifact(restore, run, fetched.path, password, phases, result)
        result.rto = timezone.now() - restore.declared_at
        if result.data_at is None and run.data_taken_at:
            result.data_at, result.data_basis = run.data_taken_at, DataBasis.BACKUP
    except (RecoveryFailure, RestoreError, keyring.KeyRingError) as exc:
        result.phases = phases.items
        message = _public_error(restore, redact(str(exc), secrets))
        restore.append_log(message)
        restore.finish(RunStatus.FAILED, message[:5000], **result.as_fields())
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.phases = phases.items
    _finish(restore, result)


def _backup_to_restore(restore: Restore) -> BackupRun:
    """The backup the restore names, or the newest one a restore test proved (pinned)."""
    source = restore.source
    run = restore.backup_run or newest_proven_backup(source)
    if run is None:
        raise RecoveryFailure(
            f"{source} has no backup that passed a restore test; choose a backup explicitly"
        )
    if restore.backup_run_id is None:
        restore.backup_run = run
        Restore.objects.filter(pk=restore.pk).update(backup_run=run)
    restore.append_log(f"restoring backup run #{run.pk} of {source} to {restore.target}")
    return run


def _prepare_target(restore: Restore, secrets: list[str]) -> str:
    """Reveal the target's password, reach it, refuse to overwrite unconfirmed; the password."""
    password = restore.target_password.reveal() if restore.target_password else ""
    secrets.append(password)
    if restore.restore_target_id:
        _reach_registered_target(restore, password)
    if restore.tables:
        if not _target_exists(restore, password):
            raise RecoveryFailure(
                f"{restore.target} does not exist: chosen tables are restored into an "
                "existing database (beside its tables, under new names)"
            )
        return password
    if restore.paths:
        if not os.path.isdir(restore.target):
            raise RecoveryFailure(f"{restore.target} is not a directory: paths go into one")
        return password  # each chosen path is checked on its own (recovery.engine.file_paths)
    if not restore.overwrite_confirmed and _target_exists(restore, password):
        raise RecoveryFailure(
            f"{restore.target} already exists and overwriting it was not confirmed: "
            "nothing was changed (a manager can confirm replacing it)"
        )
    return password


def _restore_artifact(restore, run, path: str, password: str, phases, result: RestoreResult):
    kind = artifact_kind(run)
    if target_kind_for(kind) != restore.target_kind:
        raise RecoveryFailure(f"a {kind} backup cannot be restored to a {restore.target_kind}")
    previous = previous_observations(restore.source)
    if restore.tables or restore.paths:
        done = partial_restore.restore_chosen(restore, path, password, phases)
    elif kind == "postgresql":
        done = _restore_postgres(restore, path, password, phases, previous)
    elif kind == "sqlite":
        done = _restore_sqlite(restore, path, phases, previous)
    else:
        done = _restore_files(restore, path, phases)
    # Only a restore that got through its checks records what it did (kept aside, warnings)
    result.update(done)


def _finish(restore: Restore, result: RestoreResult):
    if result.kept_aside:
        restore.append_log(f"the previous data was kept aside at {result.kept_aside}")
    bad = [c for c in result.checks or [] if c["outcome"] != Outcome.PASSED]
    if bad:
        names = ", ".join(f"{c['name']} {c['outcome'].replace('_', ' ')}" for c in bad)
        message = f"restored, but verification on the target did not pass: {names}"
        result.rto = None  # service is not verified: no RTO achieved
        restore.append_log(message)
        restore.finish(RunStatus.FAILED, message, **result.as_fields())
        return
    restore.append_log(f"verified on the target; RTO {format_duration(result.rto)}")
    restore.finish(RunStatus.SUCCEEDED, "", **result.as_fields())


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
        target = PgServer.from_url(restore.target, password=password)
        return pg.database_exists(target.with_db("postgres"), target.dbname)
    return os.path.lexists(restore.target)


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d%H%M%S")


# --- per kind ----------------------------------------------------------------------


def _ownership_plan(restore, admin: PgServer, archive: pg_swap.Archive) -> tuple[bool, list[str]]:
    """(keep owners and privileges as pg_restore does?, warnings saying why not)."""
    missing = pg_swap.missing_roles(admin, archive)
    if missing:
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


def _restore_postgres(restore, path, password, phases: Phases, previous) -> RestoreResult:
    """Restore into a staging database, swap it in (the old one kept aside), check it.

    Object owners and privileges are restored as pg_restore does when every role the
    archive names exists on the target (and we are superuser); otherwise objects belong
    to the restoring user and the warnings name what could not be kept.
    """
    target = PgServer.from_url(restore.target, password=password)
    admin = target.with_db("postgres")
    result = RestoreResult()
    stamp = _stamp()
    staging = pg_swap.staging_name(target.dbname, stamp)
    archive = pg_swap.read_archive(path)
    keep_ownership, notes = _ownership_plan(restore, admin, archive)
    warnings = archive.warnings + notes
    with phases.phase("restore"):
        record_database(restore, "target", staging)
        warnings += pg_swap.restore_to_staging(
            admin,
            staging,
            archive,
            keep_ownership=keep_ownership,
            keep_slot=restore.onto_source,
            jobs=dump_jobs(restore.backup_run, restore_jobs()),
            cancelled=lambda: restore.lease_lost,  # reaped: stop pg_restore now
        )
    with phases.phase("switch over"):
        aside = pg_swap.swap_in(admin, target.dbname, staging, stamp)
        if aside:
            result.kept_aside = target.with_db(aside).public_url()
    result.warnings = warnings
    for warning in warnings:
        restore.append_log(f"note: {warning}")
    with phases.phase("checks"):
        with target.connect() as conn:
            beat = heartbeat.read_pg(conn)
        checks = run_confined_checks(
            target, restore.source.effective_checks, previous, scratch=False
        )
        result.checks = [c.as_dict() for c in checks]
    if beat:
        result.data_at, result.data_basis = beat, DataBasis.HEARTBEAT
    return result


def _restore_sqlite(restore, unpacked, phases: Phases, previous) -> RestoreResult:
    target = _own_path(restore)
    result = RestoreResult()
    with phases.phase("restore") as phase:
        done = restore_sqlite(unpacked, str(target), _stamp(), busy_timeout=sqlite_busy_timeout())
        phase["detail"] = "; ".join([done.method, *done.notes])[:500]
        for note in done.notes:
            restore.append_log(note)
        if done.kept_aside:
            result.kept_aside = done.kept_aside
    with phases.phase("checks"):
        conn = open_sqlite_confined(str(target))
        try:
            beat = heartbeat.read_sqlite(conn)
            checks = run_checks(sqlite_query(conn), restore.source.effective_checks, previous)
            result.checks = [c.as_dict() for c in checks]
        finally:
            conn.close()
    if beat:
        result.data_at, result.data_basis = beat, DataBasis.HEARTBEAT
    return result


def _restore_files(restore, tar_path, phases: Phases) -> RestoreResult:
    target = _own_path(restore)
    result = RestoreResult(checks=[])
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
            result.kept_aside = done.kept_aside
    return result


def _own_path(restore) -> Path:
    """The target path; for a restore onto the source, the file the source really names
    (a source configured through a symlink is restored where the backup read it)."""
    path = Path(restore.target)
    return path.resolve() if restore.onto_source else path
