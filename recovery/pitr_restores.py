"""Restore a point-in-time (PITR) source to a point: one code path for manage.py restore
--at, the portal's form and the failover step.

Where it may write: a new data directory directly under a registered "PostgreSQL data
directory" target, on a port of that target's range; or the source's own data directory
(managers only), and only while its server is stopped; the old directory is renamed
`<dir>.before-restore-<UTC stamp>` first, never deleted, and put back if the restore fails.

start (validate: point inside the window, target, port, who asks; a queued Restore row)
→ execute (claim; fetch, replay and promote with pgBackRest in private mode; run the
source's checks over the copy's own socket; stop it, replace the private settings by the
service settings for the chosen port, start it when asked; record RTO from the declared
start).
"""

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.engine.pgbackrest_run import secrets_of
from backups.models import Source
from dr_portal.lib import keyring
from dr_portal.lib.queue import enqueue
from dr_portal.lib.redact import redact
from dr_portal.runs import ACTIVE, RunStatus
from recovery import restore_hooks, restore_targets
from recovery.engine import pitr
from recovery.engine import pitr_server as server
from recovery.engine.check_role import run_confined_checks
from recovery.engine.checks import Outcome
from recovery.engine.pg import PgServer, RestoreError
from recovery.models import (
    DataBasis,
    FailureType,
    Restore,
    RestoreTarget,
    RTOTarget,
    TargetKind,
)
from recovery.observations import previous_observations
from recovery.runner import Busy, RecoveryFailure, execute

__all__ = [
    "Busy",
    "execute_pitr_restore",
    "parse_point",
    "start_pitr_restore",
]

log = logging.getLogger(__name__)
ASIDE_SUFFIX = ".before-restore-"


# --- input ---------------------------------------------------------------------------


def parse_point(text: str) -> datetime:
    """An ISO-8601 date and time; without a zone it is UTC (as the portal states)."""
    value = None
    try:
        value = parse_datetime((text or "").strip())
    except ValueError:
        value = None
    if value is None:
        raise ValueError(
            f"{text!r} is not an ISO-8601 date and time (for example 2026-12-01T14:30:00Z)"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def stanza_of(source: Source, repos=None):
    """The source's pgBackRest stanza (holds secrets: never log, render or enqueue it)."""
    return source.to_stanza(repos)


def check_point(source: Source, at: datetime | None, stanza=None) -> pgbackrest.Window:
    """The live recoverable window; ValueError when it is unreadable or `at` lies outside."""
    stanza = stanza or stanza_of(source)
    win = pgbackrest.window(stanza)
    if win.error or win.oldest is None or win.newest is None:
        raise ValueError(
            f"{source.name} has no recoverable window: {win.error or 'no base backup yet'}"
        )
    if at is not None and not win.oldest <= at <= win.newest:
        raise ValueError(
            f"{at.isoformat()} is outside the recoverable window of {source.name}: "
            f"{win.oldest.isoformat()} to {win.newest.isoformat()}"
        )
    return win


def listening(host: str, port: int) -> bool:
    """Does something accept connections on host:port (a socket directory or a host)?"""
    if host.startswith("/"):
        family, address = socket.AF_UNIX, os.path.join(host, f".s.PGSQL.{port}")
        if not os.path.exists(address):
            return False
    else:
        family, address = socket.AF_INET, (host or "127.0.0.1", port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(address)
            return True
    except OSError:
        return False


def source_running(source: Source) -> str:
    """Why the source's server counts as running ("" when it is stopped)."""
    pid = server.postmaster_pid(source.data_directory)
    if pid is not None:
        return f"its postmaster (pid {pid}) is running on {source.data_directory}"
    hosts = [source.host] if source.host else ["/var/run/postgresql", "127.0.0.1"]
    for host in hosts:
        if listening(host, source.port or 5432):
            return f"a server answers on {host} port {source.port or 5432}"
    return ""


def resolve_datadir(source, data_dir: str, port: int, restore_target=None):
    """(registered target or None, onto_source) for a restore into `data_dir` on `port`;
    ValueError when the directory or the port is not one the portal may use."""
    if not data_dir or not os.path.isabs(data_dir) or ".." in Path(data_dir).parts:
        raise ValueError("give the new data directory as an absolute path without '..'")
    path = Path(os.path.normpath(data_dir))
    if not 1024 <= int(port) <= 65535:
        raise ValueError(f"port {port} is not between 1024 and 65535")
    if source.data_directory and path == Path(os.path.normpath(source.data_directory)):
        if restore_target is not None:
            raise ValueError("a restore onto the source's own data directory uses no target")
        return None, True
    candidates = RestoreTarget.objects.compatible_with(source, RestoreTarget.Kind.DATADIR)
    if restore_target is not None:
        candidates = candidates.filter(pk=restore_target.pk)
    target = next((t for t in candidates if Path(t.path) == path.parent), None)
    if target is None:
        raise ValueError(
            f"{path} is not directly under a registered data directory target for "
            f"{source.name}: a manager registers one (Recovery → restore targets, kind "
            "'PostgreSQL data directory'), or restore onto the source's own data directory"
        )
    if int(port) not in target.ports():
        raise ValueError(f"port {port} is outside target {target.name}'s ports {target.where()}")
    conflict = restore_targets.path_conflict(path, Source.objects.all())
    if conflict:
        raise ValueError(conflict)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path} already exists and is not empty: choose a new directory")
    if listening("127.0.0.1", int(port)):
        raise ValueError(f"port {port} is in use on this host: choose another")
    return target, False


# --- starting --------------------------------------------------------------------------


def start_pitr_restore(
    source: Source,
    *,
    at: datetime | None,
    data_dir: str,
    port: int,
    start: bool = False,
    restore_target: RestoreTarget | None = None,
    failure_type: str = FailureType.DATABASE_FAILURE,
    declared_at=None,
    user=None,
) -> Restore:
    """Validate everything and create a queued restore; raise ValueError (bad input, a
    point outside the window), NotAllowed or Busy. Nothing is changed on disk."""
    if not (source.pitr and source.kind == Source.Kind.POSTGRESQL):
        raise ValueError(f"{source.name} does not have point-in-time recovery turned on")
    if failure_type not in FailureType.values:
        raise ValueError(f"unknown failure type {failure_type!r}")
    target, onto_source = resolve_datadir(source, data_dir, port, restore_target)
    restore_targets.check_allowed(
        user, source=source, restore_target=target, onto_source=onto_source
    )
    if onto_source:
        running = source_running(source)
        if running:
            raise ValueError(
                f"refused: the server of {source.name} is not stopped ({running}); stop it "
                "first. Nothing was changed."
            )
    try:
        check_point(source, at)
    except (PgBackRestError, keyring.KeyRingError) as exc:
        raise ValueError(f"the recoverable window of {source.name} cannot be read: {exc}") from None
    active = Restore.objects.filter(source=source, status__in=list(ACTIVE)).first()
    if active is not None:
        raise Busy(f"restore #{active.pk} of {source} is already {active.status}")
    try:
        with transaction.atomic():
            return Restore.objects.create(
                source=source,
                pitr=True,
                target_time=at,
                failure_type=failure_type,
                declared_at=declared_at or timezone.now(),
                target_kind=TargetKind.DATADIR,
                target=os.path.normpath(data_dir),
                restore_target=target,
                onto_source=onto_source,
                overwrite_confirmed=onto_source,
                port=int(port),
                start_server=start,
                rto_target=RTOTarget.for_failure(failure_type),
                requested_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:
        raise Busy(
            f"a restore of {source} or into {data_dir} is already queued or running"
        ) from None


def enqueue_pitr_restore(restore: Restore):
    enqueue("recovery.tasks.run_restore", restore.pk, group=f"restores {restore.source_id}")


# --- executing -------------------------------------------------------------------------


def execute_pitr_restore(restore: Restore) -> Restore:
    """Run a queued point-in-time restore to its end; safe to call twice (the claim decides)."""
    return execute(restore, _pitr_restore, after=restore_hooks.run_post_hooks)


class _Run:
    """One restore in progress: the phases it went through and what it reached."""

    def __init__(self, restore: Restore):
        self.restore = restore
        self.phases: list[dict] = []
        self.fields: dict = {}
        self.aside = ""

    def on_phase(self, name: str):
        if self.phases and not self.phases[-1]["ok"]:
            self.phases[-1]["ok"] = True  # the engine moved on: the previous phase is done
        self.restore.enter_phase(name)
        self.restore.append_log(f"{name}…")
        self.phases.append({"name": name, "ok": False, "seconds": 0.0, "detail": ""})

    def timed(self, engine_phases: dict):
        for entry in self.phases:
            if entry["name"] in engine_phases:
                entry["seconds"], entry["ok"] = engine_phases[entry["name"]], True


def _pitr_restore(restore: Restore, secrets: list[str]):
    refusal = restore_hooks.run_pre_hooks(restore)
    if refusal:  # before the source's directory is moved or anything is written
        restore.append_log(refusal)
        restore.finish(RunStatus.FAILED, refusal[:5000])
        return
    run = _Run(restore)
    source = restore.source
    data_dir = restore.target
    stanza = None
    try:
        stanza = stanza_of(source)
        secrets.extend(secrets_of(stanza))
        if restore.onto_source:
            run.aside = _move_aside(restore)
        at = restore.target_time
        restore.append_log(
            f"restoring {source.name} to {at.isoformat() if at else 'the end of the archive'}"
            f" into {data_dir}"
        )
        result = pitr.restore(
            stanza,
            data_dir,
            at=at,
            port=restore.port,
            onto_source=restore.onto_source,
            on_phase=run.on_phase,
        )
        run.timed(result.phases)
        _record_reached(restore, run, result)
        checks_ok = _checks(restore, run, result)
        _into_service(restore, run, result, stanza, checks_ok)
    except (
        pitr.PitrError,
        PgBackRestError,
        RecoveryFailure,
        RestoreError,
        keyring.KeyRingError,
        OSError,
    ) as exc:
        message = redact(str(exc), secrets)
        if run.phases and not run.phases[-1]["ok"]:
            run.phases[-1]["detail"] = message[:500]
        message = _undo(restore, run, stanza.pg_bin_dir if stanza else "", message)
        restore.append_log(message)
        restore.finish(RunStatus.FAILED, message[:5000], phases=run.phases, **run.fields)
        return
    except BaseException:  # lease lost, a bug: no copy left running, the source put back
        restore.append_log(_undo(restore, run, stanza.pg_bin_dir if stanza else "", "stopped"))
        raise
    restore.finish(
        RunStatus.SUCCEEDED if checks_ok else RunStatus.FAILED,
        "" if checks_ok else run.fields.pop("error"),
        phases=run.phases,
        **run.fields,
    )


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%dT%H%M%SZ")


def _move_aside(restore: Restore) -> str:
    """Rename the stopped source's data directory; checked again now, under the claim."""
    source = restore.source
    running = source_running(source)
    if running:
        raise RecoveryFailure(
            f"refused: the server of {source.name} is running again ({running}); nothing "
            "was changed"
        )
    path = os.path.normpath(source.data_directory)
    aside = f"{path}{ASIDE_SUFFIX}{_stamp()}"
    if os.path.lexists(path):
        os.rename(path, aside)
        Restore.objects.filter(pk=restore.pk).update(kept_aside=aside)
        restore.append_log(f"the source's data directory was moved aside to {aside}")
        return aside
    restore.append_log(f"{path} did not exist: nothing to keep aside")
    return ""


def _undo(restore: Restore, run: _Run, preferred_bin: str, message: str) -> str:
    """After a failure: stop a copy left running; onto the source, put the old directory
    back (the partial restore is kept beside it, not deleted)."""
    data_dir = restore.target
    if os.path.isdir(data_dir) and os.path.exists(os.path.join(data_dir, "PG_VERSION")):
        server.stop(data_dir, preferred_bin)
    if not run.aside:
        if os.path.isdir(data_dir):
            return f"{message}; the partial restore is left at {data_dir} for inspection"
        return message
    failed = f"{data_dir}.failed-restore-{_stamp()}"
    try:
        if os.path.lexists(data_dir):
            os.rename(data_dir, failed)
        os.rename(run.aside, data_dir)
    except OSError as exc:
        return (
            f"{message}; the previous data directory is still at {run.aside} and could not "
            f"be put back ({exc})"
        )
    Restore.objects.filter(pk=restore.pk).update(kept_aside="")
    return (
        f"{message}; the previous data directory was put back at {data_dir} (the partial "
        f"restore is kept at {failed})"
    )


def _record_reached(restore: Restore, run: _Run, result):
    recovered = result.recovered_to
    run.fields.update(recovered_to=recovered, copy_used=f"pgBackRest backup set {result.label}")
    restore.append_log(
        f"promoted: last replayed commit {recovered.isoformat() if recovered else 'none'}"
    )
    if result.replayed_to_end:
        restore.append_log(
            "the point asked lies past the last archived commit: replayed to the end of the "
            "archive (every archived commit up to the point is there)"
        )


def _checks(restore: Restore, run: _Run, result) -> bool:
    """The source's checks and its heartbeat, read over the copy's private socket."""
    source = restore.source
    dbname = source.database or "postgres"
    run.on_phase("checks")
    phase = run.phases[-1]
    began = timezone.now()
    target = PgServer(result.socket_dir, result.port, result.user, "", dbname)
    beat = pitr.read_heartbeat(result, dbname) if _has_db(result, dbname) else None
    checks = run_confined_checks(
        target, source.effective_checks, previous_observations(source), scratch=False
    )
    phase["seconds"] = round((timezone.now() - began).total_seconds(), 3)
    phase["ok"] = True
    run.fields["checks"] = [c.as_dict() for c in checks]
    data_at, basis = _data_point(beat, result.recovered_to)
    if data_at:
        run.fields.update(data_at=data_at, data_basis=basis)
    bad = [c for c in checks if c.outcome != Outcome.PASSED]
    for check in checks:
        restore.append_log(f"check {check.name}: {check.outcome} ({check.detail})")
    if bad:
        names = ", ".join(f"{c.name} {c.outcome.replace('_', ' ')}" for c in bad)
        run.fields["error"] = f"restored, but verification did not pass: {names}"
        phase["ok"] = False
        return False
    return True


def _has_db(result, dbname: str) -> bool:
    with result.connect() as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        )


def _data_point(beat, recovered):
    """The newest point the restored data proves: heartbeat or last replayed commit."""
    if beat and (recovered is None or beat >= recovered):
        return beat, DataBasis.HEARTBEAT
    if recovered:
        return recovered, DataBasis.REPLAY
    return None, ""


def _into_service(restore: Restore, run: _Run, result, stanza, checks_ok: bool):
    """Stop the private copy; with its checks passed, give it its service settings for the
    chosen port and start it when asked. A copy beside its source keeps archiving off."""
    server.stop(result.data_dir, stanza.pg_bin_dir)
    if not checks_ok:
        restore.append_log("stopped; left with its private settings (not put in service)")
        return
    settings = {} if restore.onto_source else {"archive_mode": "off"}
    for note in server.put_in_service(result.data_dir, port=restore.port, settings=settings):
        restore.append_log(f"note: {note}")
        run.fields.setdefault("warnings", []).append(note)
    if restore.start_server:
        with _phase(run, "start"):
            server.start_in_service(
                result.data_dir,
                os.path.join(result.data_dir, "log", "dr_portal_service.log"),
                stanza.pg_bin_dir,
            )
        restore.append_log(f"started on port {restore.port}")
    else:
        restore.append_log(
            f"stopped and ready to start on port {restore.port} (pg_ctl -D {result.data_dir} start)"
        )
    run.fields["rto"] = timezone.now() - restore.declared_at
    if run.aside:
        run.fields["kept_aside"] = run.aside


class _phase:
    def __init__(self, run: _Run, name: str):
        self.run, self.name = run, name

    def __enter__(self):
        self.run.on_phase(self.name)
        self.began = timezone.now()

    def __exit__(self, exc_type, *_):
        entry = self.run.phases[-1]
        entry["seconds"] = round((timezone.now() - self.began).total_seconds(), 3)
        entry["ok"] = exc_type is None
