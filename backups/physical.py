"""Physical backup runs: a pgBackRest base backup of a PITR source, one per repository.

Called from services.execute() (the task, `backup_now` and "Run now" share it) inside the
run's claim, job lock and heartbeat; this module takes the backup and records it. The
stanza holds the repository passphrase and S3 keys: they go into `secrets` (redacted from
every message) and never into the log, the manifest or a task argument.

pgBackRest leaves no usable backup set behind a failed or cancelled backup (the set is
only listed by `info` once it is complete), so such a run records no copy.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict

from django.db import transaction
from django.db.models import Q

from backups.engine import pgbackrest
from backups.engine.errors import Cancelled, PgBackRestError
from backups.models import BackupCopy, BackupJob, BackupRun, PitrWindow, Source, record_window
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact
from dr_portal.runs import IllegalTransition, LeaseLost, RunStatus

log = logging.getLogger(__name__)


def location(stanza_name: str, label: str) -> str:
    return f"pgbackrest:{stanza_name}/{label}"


def set_manifest(found: pgbackrest.BackupSet) -> dict:
    """What a run records of its backup set (the manifest's "pgbackrest" entry)."""
    data = asdict(found)
    data["type"] = data.pop("kind")
    data["started"], data["stopped"] = found.started.isoformat(), found.stopped.isoformat()
    return data


def _repos(run: BackupRun, job: BackupJob, stanza_destinations) -> list[tuple[int, object]]:
    """(repo number, destination) for each enabled destination of this job in the stanza."""
    mine = {d.pk for d in job.destinations.all()}
    chosen = []
    for number, destination in enumerate(stanza_destinations, start=1):
        if destination.pk not in mine:
            continue
        if not destination.enabled:
            run.append_log(f"destination {destination.name} is disabled: skipped")
            continue
        chosen.append((number, destination))
    return chosen


def run_physical(
    run: BackupRun,
    job: BackupJob,
    secrets: list[str],
    *,
    cancel: threading.Event,
    progress: Callable[[str], None],
) -> None:
    """Take the job's base backup into each of its repositories and finish the run."""
    source = job.source
    run.beat("preparing")
    if source.pitr_adopted:  # a job made before the adoption; the job form refuses new ones
        _finish_failed(
            run,
            f"{source.name} is an adopted pgBackRest stanza: the portal does not take its "
            "base backups (its own schedule does); disable this job",
        )
        return
    try:
        destinations = source.physical_destinations()
        stanza = source.to_stanza(destinations)
    except (keyring.KeyRingError, ValueError) as exc:
        _finish_failed(run, f"cannot build the pgBackRest stanza: {exc}")
        return
    secrets.append(stanza.cipher_pass)
    for repo in stanza.repos:
        secrets.extend([repo.access_key_id, repo.secret_access_key])
    repos = _repos(run, job, destinations)
    if not repos:
        _finish_failed(run, "no enabled destination: nothing to write to")
        return
    run.append_log(
        f"pgBackRest {job.backup_type} backup of {source.name} (stanza {stanza.name}) to "
        + ", ".join(f"repo{n} {d.name}" for n, d in repos)
    )
    taken, errors = [], []
    for number, destination in repos:
        try:
            found = pgbackrest.backup(
                stanza, job.backup_type, cancel=cancel, progress=progress, repo=number
            )
        except Cancelled:
            why = _cancel_reason(run)
            run.append_log(f"{why}: pgBackRest stopped, no backup set was kept")
            _finish(run, RunStatus.CANCELLED, why, taken=[])
            return
        except PgBackRestError as exc:
            message = redact(str(exc), secrets)
            run.append_log(f"repo{number} {destination.name}: {message}")
            errors.append(f"{destination.name}: {message}")
            continue
        _log_set(run, job, destination, found)
        taken.append((destination, found))
    status = RunStatus.SUCCEEDED if not errors else RunStatus.PARTIAL if taken else RunStatus.FAILED
    _finish(run, status, "; ".join(errors), taken=taken, stanza=stanza)
    if taken:
        refresh_window(source, stanza)


def _cancel_reason(run: BackupRun) -> str:
    if run.lease_lost:
        return "lost the run to the reaper"
    return "cancelled"


def _log_set(run, job, destination, found: pgbackrest.BackupSet):
    run.append_log(
        f"repo{found.repo} {destination.name}: backup set {found.label} ({found.kind}"
        f"{f', prior {found.prior}' if found.prior else ''}), WAL {found.wal_start} to "
        f"{found.wal_stop}, {found.size} bytes of data, {found.repo_delta} bytes added"
    )
    if found.kind != job.backup_type:
        # pgBackRest promotes a diff/incr to a full when there is no full to base it on.
        run.append_log(
            f"pgBackRest took a {found.kind} backup instead of the {job.backup_type} asked for: "
            "there was no prior backup to base it on"
        )


def _finish_failed(run: BackupRun, message: str):
    run.append_log(message)
    run.finish(RunStatus.FAILED, message)


def _finish(run: BackupRun, status: str, error: str, *, taken, stanza=None):
    """The copies and the run's end in one transaction (only while this worker holds it)."""
    first = taken[0][1] if taken else None
    manifest = {"method": "physical"}
    if first is not None:
        manifest["pgbackrest"] = set_manifest(first)
        manifest["pgbackrest"]["repos"] = {d.name: s.label for d, s in taken}
    if status == RunStatus.FAILED and not error:
        error = "backup failed"
    try:
        run.check_lease()
        with transaction.atomic():
            for destination, found in taken:
                BackupCopy.objects.create(
                    run=run,
                    destination=destination,
                    location=location(stanza.name, found.label),
                    bytes_stored=found.repo_delta,
                    ok=True,
                )
            run.append_log(f"{status}: {error}" if error else status)
            run.finish(
                status,
                error,
                only_if=Q(worker=run.worker),
                bytes_read=first.size if first else 0,
                bytes_stored=sum(s.repo_delta for _, s in taken),
                data_taken_at=first.stopped if first else None,
                manifest=manifest,
                artifact_key=first.label if first else "",
            )
    except (LeaseLost, IllegalTransition) as exc:
        _abandon(run, stanza, taken, str(exc))


def _abandon(run: BackupRun, stanza, taken, why: str):
    """A reaped run records nothing; its backup sets are expired so none is left unowned."""
    removed = []
    for _destination, found in taken:
        try:
            pgbackrest.expire(stanza, found.label, repo=found.repo)
            removed.append(found.label)
        except PgBackRestError as exc:
            log.warning("%s: backup set %s not expired: %s", run, found.label, exc)
    log.warning("%s lost its lease, nothing recorded (%s); expired %s", run, why, removed)
    run.append_log(
        "lost the run to the reaper: nothing recorded"
        + (f"; expired {', '.join(removed)}" if removed else "")
    )


def refresh_window(source: Source, stanza: pgbackrest.Stanza | None = None) -> PitrWindow:
    """Read the recoverable window from the first repository and store it on the source.

    An error (stanza unreadable, key ring changed) is stored on the row, never raised."""
    try:
        stanza = stanza or source.to_stanza()
    except (keyring.KeyRingError, ValueError, PgBackRestError) as exc:
        return record_window(source, pgbackrest.Window(None, None, error=str(exc)[:500]))
    if not stanza.repos:
        why = "no repository named" if source.pitr_adopted else "no physical job"
        return record_window(
            source,
            pgbackrest.Window(None, None, error=f"{why}: the stanza has no repository"),
        )
    return record_window(source, pgbackrest.window(stanza))


def refresh_all_windows() -> dict[str, str]:
    """Every PITR source's window; one source's failure does not stop the others."""
    results = {}
    for source in Source.objects.filter(pitr=True, kind=Source.Kind.POSTGRESQL).order_by("name"):
        try:
            row = refresh_window(source)
            results[source.name] = row.error or f"{row.oldest} .. {row.newest}"
        except Exception as exc:  # a database error on one row; the next source still runs
            log.exception("window of %s not refreshed", source)
            results[source.name] = f"error: {type(exc).__name__}"
    return results
