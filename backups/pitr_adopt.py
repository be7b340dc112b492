"""Adopting an existing pgBackRest stanza: a read-only catalog of its repository.

The stanza is run by someone else (their archive_command, their backup schedule, their
expire). The portal reads `pgbackrest info --output=json` with a configuration file of its
own and keeps its catalog in step: a backup set it has not seen becomes a succeeded
BackupRun (trigger "catalog") with one copy per repository destination holding it; a set
gone from a repository (expired by its DBA) has that copy marked deleted. Nothing here
writes to the repository. `manage.py pitr_adopt` and the window task call sync().
"""

import logging
from dataclasses import asdict, dataclass, field

from django.db import transaction
from django.utils import timezone

from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.models import BackupCopy, BackupRun, Source, Trigger
from backups.physical import location, set_manifest
from dr_portal import audit
from dr_portal.lib import keyring, readiness_version
from dr_portal.lib.redact import redact
from dr_portal.runs import RunStatus

log = logging.getLogger(__name__)
EXPIRED_OUTSIDE = "expired outside the portal"


class AdoptError(Exception):
    """The repository could not be read; the message names why (no secret in it)."""


@dataclass
class AdoptReport:
    source: str
    stanza: str = ""
    sets: list[str] = field(default_factory=list)  # every set listed, oldest first
    runs_created: list[str] = field(default_factory=list)
    copies_created: int = 0
    copies_expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def changed(self) -> bool:
        return bool(self.runs_created or self.copies_created or self.copies_expired)


def read_sets(source: Source):
    """(stanza, destinations in repo order, the sets `info` lists); AdoptError when unreadable."""
    if not (source.pitr and source.pitr_adopted):
        raise AdoptError(f"{source.name} is not an adopted stanza: set pitr and pitr_adopted")
    destinations = source.physical_destinations()
    if not destinations:
        raise AdoptError(
            f"{source.name} names no repository: add its destinations to pitr_destinations "
            "(repo1 first)"
        )
    try:
        stanza = source.to_stanza(destinations)
    except (keyring.KeyRingError, ValueError) as exc:
        raise AdoptError(f"cannot build the stanza: {exc}") from None
    secrets = [stanza.cipher_pass, *(k for r in stanza.repos for k in _keys(r))]
    try:
        return stanza, destinations, pgbackrest.backups(stanza)
    except PgBackRestError as exc:
        raise AdoptError(redact(str(exc), secrets)) from None


def _keys(repo) -> list[str]:
    return [k for k in (repo.access_key_id, repo.secret_access_key) if k]


def sync(source: Source) -> AdoptReport:
    """Bring the catalog in line with the repository; idempotent. Raises AdoptError."""
    stanza, destinations, sets = read_sets(source)
    report = AdoptReport(source=source.name, stanza=stanza.name)
    by_label: dict[str, list] = {}
    for found in sets:
        by_label.setdefault(found.label, []).append(found)
    report.sets = list(by_label)
    now = timezone.now()
    with transaction.atomic():
        Source.objects.select_for_update().filter(pk=source.pk).first()  # one sync at a time
        known = {
            run.artifact_key: run
            for run in BackupRun.objects.filter(source=source, trigger=Trigger.CATALOG)
        }
        for label, found in by_label.items():
            run = known.get(label) or _create_run(source, found, destinations, report)
            report.copies_created += _add_copies(run, stanza, found, destinations)
        report.copies_expired = _mark_expired(source, by_label, destinations, now)
    if report.changed:
        audit.record(
            "pitr adopt",
            source,
            detail=f"stanza {stanza.name}: {len(report.runs_created)} backup sets catalogued, "
            f"{report.copies_created} copies added, {len(report.copies_expired)} "
            f"{EXPIRED_OUTSIDE}",
        )
    return report


def _create_run(source, found: list, destinations, report) -> BackupRun:
    first = found[0]
    manifest = {"method": "physical", "adopted": True, "pgbackrest": set_manifest(first)}
    manifest["pgbackrest"]["repos"] = {
        destinations[s.repo - 1].name: s.label for s in found if s.repo <= len(destinations)
    }
    run = BackupRun.objects.create(
        source=source,
        source_name=source.name,
        trigger=Trigger.CATALOG,
        status=RunStatus.SUCCEEDED,
        queued=first.started,
        started=first.started,
        finished=first.stopped,
        artifact_key=first.label,
        bytes_read=first.size,
        bytes_stored=sum(s.repo_delta for s in found),
        data_taken_at=first.stopped,
        manifest=manifest,
        log=f"{first.kind} backup set {first.label} read from the adopted stanza's repository\n",
    )
    report.runs_created.append(first.label)
    return run


def _add_copies(run: BackupRun, stanza, found: list, destinations) -> int:
    added = 0
    for backup_set in found:
        if backup_set.repo > len(destinations):
            log.warning(
                "%s: set %s is in repo%s, which names no destination",
                run.source_name,
                backup_set.label,
                backup_set.repo,
            )
            continue
        destination = destinations[backup_set.repo - 1]
        _, created = BackupCopy.objects.get_or_create(
            run=run,
            destination=destination,
            defaults={
                "location": location(stanza.name, backup_set.label),
                "bytes_stored": backup_set.repo_delta,
                "ok": True,
                "created": backup_set.stopped,
            },
        )
        added += created
    return added


def _mark_expired(source, by_label: dict, destinations, now) -> list[str]:
    """Live copies whose set is gone from their repository: deleted, with the reason."""
    present = {
        (label, destinations[s.repo - 1].pk)
        for label, found in by_label.items()
        for s in found
        if s.repo <= len(destinations)
    }
    gone = [
        copy
        for copy in BackupCopy.objects.live()
        .filter(run__source=source, run__trigger=Trigger.CATALOG)
        .select_related("run", "destination")
        if (copy.run.artifact_key, copy.destination_id) not in present
    ]
    BackupCopy.objects.filter(pk__in=[c.pk for c in gone]).update(
        deleted_at=now, deleted_reason=EXPIRED_OUTSIDE
    )
    readiness_version.bump()  # an update(): no model signal sees it
    return [f"{c.destination.name}: {c.run.artifact_key}" for c in gone]


def sync_all() -> dict[str, str]:
    """The window task's pass over every adopted stanza; one failure does not stop the rest."""
    results = {}
    adopted = Source.objects.filter(pitr=True, pitr_adopted=True, kind=Source.Kind.POSTGRESQL)
    for source in adopted.order_by("name"):
        try:
            report = sync(source)
            results[source.name] = f"{len(report.sets)} sets, {len(report.runs_created)} new"
        except AdoptError as exc:
            results[source.name] = f"error: {exc}"
        except Exception as exc:  # a database error on one source; the next still runs
            log.exception("catalog of adopted stanza %s not refreshed", source)
            results[source.name] = f"error: {type(exc).__name__}"
    return results
