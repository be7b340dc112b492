"""Rebuild the catalog (runs and copies) from the manifests stored in a destination.

The portal's own database may be what was lost: everything a restore needs is in the
manifest beside each artifact. Idempotent: a copy already in the catalog is left alone.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from backups.engine import MANIFEST_SUFFIX, open_destination
from backups.models import BackupCopy, BackupJob, BackupRun, Destination, Source, Trigger
from dr_portal.runs import ACTIVE, RunStatus

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    seen: int = 0
    runs_created: int = 0
    copies_created: int = 0
    already_known: int = 0
    skipped: int = 0


def _time(value):
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _artifact_location(manifest_location: str, manifest: dict) -> str:
    if manifest_location.endswith(MANIFEST_SUFFIX):
        return manifest_location[: -len(MANIFEST_SUFFIX)]
    return manifest.get("location", "")


def rebuild(destination, stdout=None) -> RebuildReport:
    report = RebuildReport()
    store = open_destination(destination.to_spec())
    for manifest_location, manifest in store.iter_manifests():
        report.seen += 1
        if not isinstance(manifest, dict) or not manifest.get("sha256"):
            report.skipped += 1
            continue
        if manifest.get("source_kind") == "pg_globals":
            # Roles beside a PostgreSQL backup (backups/globals.py): not a backup of its own.
            report.skipped += 1
            continue
        location = _artifact_location(manifest_location, manifest)
        if _in_flight(manifest):  # its run is about to record this copy itself
            report.skipped += 1
            continue
        with transaction.atomic():
            if BackupCopy.objects.filter(destination=destination, location=location).exists():
                report.already_known += 1
                continue
            run, created = _run_for(manifest)
            BackupCopy.objects.create(
                run=run,
                destination=destination,
                location=location,
                manifest_location=manifest_location,
                bytes_stored=int(manifest.get("bytes_stored") or 0),
                storage_class=manifest.get("storage_class") or "",
                ok=True,
                created=_time(manifest.get("finished")) or run.finished,
            )
        report.copies_created += 1
        report.runs_created += int(created)
        if stdout is not None:
            stdout.write(f"{'new run' if created else 'known run'} #{run.pk}: {location}")
    return report


def _in_flight(manifest: dict) -> bool:
    portal = manifest.get("portal") if isinstance(manifest.get("portal"), dict) else {}
    run_id = portal.get("run")
    return bool(run_id) and BackupRun.objects.filter(pk=run_id, status__in=ACTIVE).exists()


def adopt_orphans() -> dict[str, int]:
    """The periodic sweep: adopt artifacts published at a destination without a catalog row
    (a worker killed between publishing and recording); {destination: copies adopted}."""
    adopted = {}
    for destination in Destination.objects.filter(enabled=True).order_by("name"):
        try:
            report = rebuild(destination)
        except Exception as exc:  # an unreachable destination is tried again next time
            log.warning("catalog sweep of %s failed: %s", destination, exc)
            continue
        adopted[destination.name] = report.copies_created
        if report.copies_created:
            log.warning(
                "catalog sweep adopted %d artifact(s) at %s that had no catalog row",
                report.copies_created,
                destination,
            )
    return adopted


def _run_for(manifest: dict) -> tuple[BackupRun, bool]:
    """The run this manifest belongs to (matched by artifact key and SHA-256), or a new one."""
    key = manifest.get("artifact_key") or ""
    existing = BackupRun.objects.filter(artifact_key=key, sha256=manifest["sha256"]).first()
    if existing is not None:
        return existing, False
    portal = manifest.get("portal") if isinstance(manifest.get("portal"), dict) else {}
    source_name = portal.get("source") or key.split("/")[0]
    job_name = portal.get("job") or ""
    bytes_read = int(manifest.get("bytes_read") or 0)
    bytes_stored = int(manifest.get("bytes_stored") or 0)
    started = _time(manifest.get("started"))
    finished = _time(manifest.get("finished"))
    run = BackupRun.objects.create(
        status=RunStatus.SUCCEEDED,
        trigger=Trigger.CATALOG,
        job=BackupJob.objects.filter(name=job_name).first() if job_name else None,
        job_name=job_name,
        source=Source.objects.filter(name=source_name).first(),
        source_name=source_name,
        artifact_key=key,
        queued=started or finished,
        started=started,
        finished=finished,
        data_taken_at=_time(manifest.get("data_taken_at")),
        bytes_read=bytes_read,
        bytes_stored=bytes_stored,
        compression_ratio=round(bytes_read / bytes_stored, 3) if bytes_stored else None,
        sha256=manifest["sha256"],
        manifest=manifest,
        log=f"rebuilt from the manifest of {key}\n",
    )
    return run, True
