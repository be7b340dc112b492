"""Scrub: read every live copy back through the artifact's own verification, on a schedule.

A copy is proven by streaming it through unpack_artifact (the same path a restore takes:
every chunk's authentication when encrypted, the codec's checksum, and the SHA-256 of the
stored bytes against the run's manifest) into nothing. Copies in an archive class (GLACIER,
DEEP_ARCHIVE) cannot be read without a retrieval: they get a metadata check (HEAD) only,
unless a restore was asked for (backups.archive) and its temporary copy is available: then
they are read through like the others.

Order: the copies proven longest ago (never proven first), oldest first. Each pass reads at
most DR_SCRUB_BYTES_PER_HOUR x DR_SCRUB_EVERY_HOURS per destination, so over time no
destination is read faster than its cap; a copy larger than a whole pass's budget is still
read when it comes first (otherwise it would never be proven).

Outcome per copy: `proven_at` stamped, or `proof_error` kept. A copy found missing or
corrupt is marked lost (BackupCopy.mark_lost): it stops counting for 3-2-1, RPO and
readiness at once. An unreachable store or a key missing from the ring is not the copy's
fault: the error is kept and the copy stays live. Listeners (incidents registers its alerts)
get every pass's result.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone

from backups import archive
from backups.engine import ArtifactError, EngineError, open_destination, unpack_artifact
from backups.models import ARCHIVE_CLASSES, ArchiveRestore, BackupCopy, Destination
from dr_portal.lib import keyring
from dr_portal.lib.redact import redact

log = logging.getLogger(__name__)

# What unpack_artifact says when the copy is fine but its key is gone (not the copy's fault).
KEY_NOT_IN_RING = "not in the key ring"


@dataclass
class CopyProof:
    copy: int
    run: int
    location: str
    outcome: str  # proven | lost | error
    bytes_read: int = 0
    detail: str = ""


@dataclass
class DestinationScrub:
    destination: str
    budget: int
    bytes_read: int = 0
    proofs: list[CopyProof] = field(default_factory=list)
    left: int = 0  # live copies this pass did not reach (budget, time, or the store failed)
    error: str = ""
    out_of_time: bool = False

    def count(self, outcome: str) -> int:
        return sum(p.outcome == outcome for p in self.proofs)

    @property
    def lost(self) -> list[CopyProof]:
        return [p for p in self.proofs if p.outcome == "lost"]


@dataclass
class ScrubResult:
    destinations: list[DestinationScrub] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(len(d.lost) for d in self.destinations)

    def as_dict(self) -> dict:
        return {
            "destinations": [
                {**asdict(d), "proven": d.count("proven"), "lost": len(d.lost)}
                for d in self.destinations
            ]
        }


_listeners: list[Callable[[ScrubResult], None]] = []


def register_scrub_listener(listener: Callable[[ScrubResult], None]) -> None:
    """Call `listener(result)` after every pass (incidents: alerts); lower layers stay unaware."""
    if listener not in _listeners:
        _listeners.append(listener)


def pass_deadline() -> float:
    """time.monotonic() by which a pass stops starting copies: well inside the task timeout,
    so a slow store leaves copies for the next pass instead of a killed task."""
    return time.monotonic() + 0.75 * settings.Q_TIMEOUT


def pass_budget() -> int:
    """Bytes one pass may read per destination: the hourly cap over the pass interval."""
    return int(settings.DR_SCRUB_BYTES_PER_HOUR * settings.DR_SCRUB_EVERY_HOURS)


class _Discard:
    """The restored bytes go nowhere: the scrub wants the verification, not the data."""

    def write(self, data) -> int:
        return len(data)


def scrub(names: list[str] | None = None, *, budget: int | None = None) -> ScrubResult:
    """One pass over the enabled destinations (or the named ones, enabled or not)."""
    destinations = Destination.objects.order_by("name")
    destinations = (
        destinations.filter(name__in=names) if names else destinations.filter(enabled=True)
    )
    budget = pass_budget() if budget is None else budget
    deadline = pass_deadline()
    try:
        keys = keyring.ring()
    except keyring.KeyRingError as exc:
        keys, key_error = None, f"the key ring cannot be read: {exc}"
    result = ScrubResult()
    for destination in destinations:
        if keys is None:
            result.destinations.append(DestinationScrub(destination.name, budget, error=key_error))
            continue
        result.destinations.append(scrub_destination(destination, budget, keys, deadline))
    for listener in _listeners:
        try:
            listener(result)
        except Exception:  # an alert that fails must not lose the scrub's findings
            log.exception("scrub listener %s failed", listener)
    return result


def queue(destination: Destination):
    """Live copies at `destination`, the one proven longest ago (or never) first."""
    return (
        BackupCopy.objects.live()
        .filter(destination=destination)
        .exclude(location__startswith="pgbackrest:")  # pgBackRest's sets: restore tests prove them
        .select_related("run")
        .order_by(F("proven_at").asc(nulls_first=True), "created", "pk")
    )


def scrub_destination(
    destination: Destination, budget: int, keys, deadline: float = float("inf")
) -> DestinationScrub:
    out = DestinationScrub(destination.name, budget)
    secrets = destination.secret_values()
    copies = list(queue(destination))
    try:
        store = open_destination(destination.to_spec())
    except Exception as exc:  # noqa: BLE001 - reported on the pass, never raised
        out.error, out.left = redact(str(exc), secrets) or type(exc).__name__, len(copies)
        return out
    for index, copy in enumerate(copies):
        size = copy.bytes_stored or copy.run.bytes_stored
        if out.proofs and out.bytes_read + size > budget:
            out.left = len(copies) - index
            break
        if time.monotonic() > deadline:
            out.left, out.out_of_time = len(copies) - index, True
            break
        proof = prove_copy(store, destination, copy, keys, secrets)
        out.proofs.append(proof)
        out.bytes_read += proof.bytes_read
        if proof.outcome == "error" and KEY_NOT_IN_RING not in proof.detail:
            # The store failed (unreachable, refused): the rest would fail the same way.
            out.error, out.left = proof.detail, len(copies) - index - 1
            break
    return out


def prove_copy(store, destination: Destination, copy: BackupCopy, keys, secrets) -> CopyProof:
    """Verify one copy and record the outcome on it (proven_at, proof_error, or lost)."""
    proof = CopyProof(copy.pk, copy.run_id, copy.location, "proven")
    archived = destination.is_archive or copy.storage_class in ARCHIVE_CLASSES
    try:
        if not store.exists(copy.location):
            proof.outcome, proof.detail = "lost", f"missing at {destination.name}"
        elif archived and (note := _unread_archive(store, copy)):
            proof.detail = note
        else:
            reader = store.open_read(copy.location)
            try:
                info = unpack_artifact(reader, _Discard(), keys, expected_sha256=copy.run.sha256)
            finally:
                getattr(reader, "close", lambda: None)()
            proof.bytes_read = int(info["bytes_in"])
            checked = "authentication" if info.get("encrypted") else "checksum"
            proof.detail = f"read {proof.bytes_read} bytes: SHA-256 and {checked} verified"
    except ArtifactError as exc:
        message = redact(str(exc), secrets)
        proof.outcome = "error" if KEY_NOT_IN_RING in message else "lost"
        proof.detail = f"unreadable: {message}"
    except (EngineError, OSError) as exc:
        proof.outcome, proof.detail = "error", redact(str(exc), secrets) or type(exc).__name__
    _record(copy, proof)
    return proof


def _unread_archive(store, copy: BackupCopy) -> str:
    """Why an archived copy is only looked at, or "" when a restore made it readable."""
    restore = archive.refresh(store, copy)
    if restore is not None and restore.state == ArchiveRestore.State.AVAILABLE:
        return ""
    note = "archive class: the object's metadata is present (not read)"
    if restore is not None:
        note += (
            f"; restore requested {restore.requested_at:%Y-%m-%d %H:%M} UTC "
            f"({restore.tier}), {restore.state}"
        )
    return note


def _record(copy: BackupCopy, proof: CopyProof) -> None:
    now = timezone.now()
    if proof.outcome == "proven":
        BackupCopy.objects.filter(pk=copy.pk).update(proven_at=now, proof_error="")
        return
    BackupCopy.objects.filter(pk=copy.pk).update(proof_error=proof.detail[:2000])
    if proof.outcome == "lost":
        copy.mark_lost(f"scrub: {proof.detail}")


def proven_within(now=None, days: int | None = None) -> dict[int, dict]:
    """{destination id: {"live", "proven", "days"}}: live copies, and those the scrub proved
    in the last `days` (DR_PROVEN_WITHIN_DAYS). The one figure of the dashboard and the
    compliance report; one grouped query over the live copies."""
    days = settings.DR_PROVEN_WITHIN_DAYS if days is None else days
    since = (now or timezone.now()) - timedelta(days=days)
    rows = (
        BackupCopy.objects.live()
        .values("destination_id")
        .annotate(live=Count("pk"), proven=Count("pk", filter=Q(proven_at__gte=since)))
        .order_by()
    )
    return {
        r["destination_id"]: {"live": r["live"], "proven": r["proven"], "days": days} for r in rows
    }
