"""Restores of archived copies (GLACIER, DEEP_ARCHIVE), asked for, never automatic.

`request()` issues RestoreObject with a tier and a number of days and records an
ArchiveRestore; the scrub calls `refresh()` for a copy with an open request, and once the
temporary copy is available it reads the copy through like any other (so an archived copy
can be proven, not just seen). The portal button and `manage.py scrub --restore-archived`
call the same function.
"""

import logging

from django.utils import timezone

from backups.engine import EngineError, open_destination
from backups.engine.destinations.s3_archive import check_request
from backups.models import ARCHIVE_CLASSES, ArchiveRestore, BackupCopy, Destination
from dr_portal import audit
from dr_portal.lib.redact import redact

log = logging.getLogger(__name__)


class RestoreRefused(ValueError):
    """The copy cannot be restored from an archive (not archived, not live, bad tier/days)."""


def is_archived(copy: BackupCopy) -> bool:
    destination = copy.destination
    return destination.kind == Destination.Kind.S3 and (
        destination.is_archive or copy.storage_class in ARCHIVE_CLASSES
    )


def open_request(copy: BackupCopy) -> ArchiveRestore | None:
    return copy.archive_restores.filter(state__in=ArchiveRestore.OPEN).first()


def request(copy: BackupCopy, tier: str, days: int, *, by: str = "", store=None) -> ArchiveRestore:
    """Ask the store for a temporary readable copy; an open request is returned, not repeated."""
    if not copy.is_live or not is_archived(copy):
        raise RestoreRefused(f"{copy} is not a live copy in an archive class")
    try:
        check_request(tier, days)
    except ValueError as exc:
        raise RestoreRefused(str(exc)) from None
    existing = open_request(copy)
    if existing is not None:
        return existing
    destination = copy.destination
    row = ArchiveRestore(copy=copy, tier=tier, days=days, requested_by=by)
    try:
        store = store or open_destination(destination.to_spec())
        row.state = store.request_restore(copy.location, tier, days)
    except EngineError as exc:
        row.state = ArchiveRestore.State.FAILED
        row.error = redact(str(exc), destination.secret_values())[:2000]
    row.checked_at = timezone.now()
    row.save()
    audit.record(
        "archive restore requested",
        copy.run,
        detail=f"{destination.name}: {copy.location}, {tier}, {days} days: {row.state}"
        + (f" ({row.error})" if row.error else ""),
    )
    return row


def refresh(store, copy: BackupCopy) -> ArchiveRestore | None:
    """Bring the copy's open request up to date from the store (HEAD); None without one."""
    row = open_request(copy)
    if row is None:
        return None
    try:
        state, until = store.restore_state(copy.location)
    except EngineError as exc:
        log.warning("restore state of %s: %s", copy, exc)
        return row
    if state == "not requested":  # the temporary copy expired (or the store forgot it)
        row.state = ArchiveRestore.State.EXPIRED
    else:
        row.state, row.available_until = state, until
    row.checked_at = timezone.now()
    row.save(update_fields=["state", "available_until", "checked_at"])
    return row


def request_all(destinations, tier: str, days: int, *, by: str = "") -> list[ArchiveRestore]:
    """A request for every live archived copy at `destinations` without an open one."""
    rows = []
    for destination in destinations:
        copies = (
            BackupCopy.objects.live()
            .filter(destination=destination)
            .select_related("run", "destination")
        )
        archived = [c for c in copies if is_archived(c)]
        if not archived:
            continue
        store = open_destination(destination.to_spec())
        rows += [request(copy, tier, days, by=by, store=store) for copy in archived]
    return rows
