"""Retention: which stored copies may go, and deleting them (storage first, then the catalog).

Per destination and source, a copy goes only when it is older than `keep_days` AND beyond
the newest `keep_last` copies there, and none of these protect it:
- it belongs to the newest good backup of its source (a new backup must complete first);
- it belongs to the newest backup of its source that passed a restore test;
- a restore or restore test is reading it right now;
- its S3 storage class bills a minimum duration that has not passed (GLACIER 90 d, ...);
- it is under S3 Object Lock (the destination's immutable_days): retention waits for the
  lock to end and says when, rather than asking the store to refuse.
Where the portal may not delete (Destination.deletes_left_to: an S3 key that cannot, an
append-only directory) nothing is deleted: copies past retention leave the catalog, left to
the bucket's lifecycle rule or the host.
`plan()` is the pure policy; `apply()` reads the catalog, deletes and records.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backups import physical_retention
from backups.engine import DestinationError, open_destination
from backups.globals import delete_globals
from backups.models import BackupCopy, BackupRun, Destination
from dr_portal import audit
from dr_portal.lib import readiness_version
from dr_portal.runs import DONE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """A live copy as the policy sees it."""

    copy_id: int
    run_id: int
    source_id: int | None
    created: datetime
    storage_class: str = ""
    locked_until: datetime | None = None


@dataclass(frozen=True)
class Policy:
    keep_days: int
    keep_last: int
    minimum_storage: timedelta | None = None


@dataclass
class Decision:
    item: Item
    delete: bool
    reason: str
    not_before: datetime | None = None  # archive minimum: deletable from this moment
    copy: object = field(default=None, compare=False)


def plan(
    items: list[Item],
    policy: Policy,
    *,
    now: datetime,
    protected: dict[int, str] | None = None,
    in_use: set[int] | None = None,
) -> list[Decision]:
    """Decide for every item; `protected` maps run ids to the reason they must stay."""
    protected = protected or {}
    in_use = in_use or set()
    keep_last = max(1, policy.keep_last)
    max_age = timedelta(days=policy.keep_days)
    groups: dict[int | None, list[Item]] = {}
    for item in items:
        groups.setdefault(item.source_id, []).append(item)
    decisions = []
    for group in groups.values():
        group.sort(key=lambda i: (i.created, i.copy_id), reverse=True)
        for index, item in enumerate(group):
            age = now - item.created
            if index < keep_last:
                decisions.append(Decision(item, False, f"one of the newest {keep_last}"))
            elif age <= max_age:
                decisions.append(Decision(item, False, f"younger than {policy.keep_days} days"))
            elif item.run_id in in_use:
                decisions.append(Decision(item, False, "being read by a restore or restore test"))
            elif item.run_id in protected:
                decisions.append(Decision(item, False, protected[item.run_id]))
            elif item.locked_until and item.locked_until > now:
                until = item.locked_until
                decisions.append(
                    Decision(
                        item,
                        False,
                        f"immutable (S3 Object Lock) until {until:%Y-%m-%d %H:%M} UTC: "
                        "deletable from then",
                        not_before=until,
                    )
                )
            elif policy.minimum_storage and age < policy.minimum_storage:
                until = item.created + policy.minimum_storage
                decisions.append(
                    Decision(
                        item,
                        False,
                        f"{item.storage_class or 'archive'} minimum storage of "
                        f"{policy.minimum_storage.days} days: deletable from {until:%Y-%m-%d}",
                        not_before=until,
                    )
                )
            else:
                decisions.append(
                    Decision(
                        item,
                        True,
                        f"older than {policy.keep_days} days and beyond the newest {keep_last}",
                    )
                )
    decisions.sort(key=lambda d: (d.item.created, d.item.copy_id), reverse=True)
    return decisions


# --- what protects a run -----------------------------------------------------
def newest_good_run_ids(source_ids=None) -> dict[int, str]:
    """The newest succeeded/partial, restorable run with a live copy, per source."""
    runs = (
        BackupRun.objects.good()
        .filter(source__isnull=False)
        .order_by("source_id", "-data_taken_at", "-finished", "-pk")
        .values_list("pk", "source_id", "source_name")
    )
    if source_ids is not None:
        runs = runs.filter(source_id__in=source_ids)
    out, seen = {}, set()
    for pk, source_id, source_name in runs:
        if source_id not in seen:
            seen.add(source_id)
            out[pk] = f"newest good backup of {source_name}"
    return out


# recovery registers these at ready() (RecoveryConfig): backups may not import recovery.
# Until then (or in a portal without restore tests) nothing is protected by one.
def _no_restore_tests(source_ids=None) -> dict[int, str]:
    return {}


_protected_by_restore_tests: Callable[..., dict[int, str]] = _no_restore_tests
_read_by_restores: Callable[[], set[int]] = set


def register_recovery_lookups(
    *,
    protected: Callable[..., dict[int, str]],
    in_use: Callable[[], set[int]],
) -> None:
    """Install `protected(source_ids) -> {run id: reason}` (the newest backup per source that
    passed a restore test) and `in_use() -> {run id}` (read by an active restore or test)."""
    global _protected_by_restore_tests, _read_by_restores
    _protected_by_restore_tests = protected
    _read_by_restores = in_use


def runs_in_use() -> set[int]:
    """Backup runs that an active restore or restore test is reading."""
    return set(_read_by_restores())


def protected_runs(source_ids=None) -> dict[int, str]:
    protected = newest_good_run_ids(source_ids)
    for run_id, reason in _protected_by_restore_tests(source_ids).items():
        protected[run_id] = f"{protected[run_id]}; {reason}" if run_id in protected else reason
    return protected


# --- reading the catalog and applying ----------------------------------------
def preview(destination, *, source_ids=None, now=None) -> list[Decision]:
    """Decisions for the live copies of one destination (nothing is changed)."""
    now = now or timezone.now()
    copies = (
        BackupCopy.objects.live()
        .filter(destination=destination, run__status__in=list(DONE))
        .exclude(location__startswith=physical_retention.PREFIX)  # whole chains: see below
        .select_related("run")
        .order_by("-created")
    )
    if source_ids is not None:
        copies = copies.filter(run__source_id__in=source_ids)
    copies = list(copies)
    by_id = {c.pk: c for c in copies}
    items = [
        Item(
            c.pk,
            c.run_id,
            c.run.source_id,
            c.run.finished or c.created,
            c.storage_class,
            c.locked_until,
        )
        for c in copies
    ]
    policy = Policy(destination.keep_days, destination.keep_last, destination.minimum_storage)
    decisions = plan(
        items, policy, now=now, protected=protected_runs(source_ids), in_use=runs_in_use()
    )
    for decision in decisions:
        decision.copy = by_id[decision.item.copy_id]
    return decisions


def apply(destination, *, source_ids=None, dry_run=False, now=None, stdout=None) -> list[Decision]:
    """Delete what the policy allows: from storage first, then mark the copy deleted.

    A copy whose storage delete fails stays in the catalog (and is retried next time).
    """
    physical_retention.apply(
        destination,
        protected=protected_runs(source_ids),
        in_use=runs_in_use(),
        source_ids=source_ids,
        dry_run=dry_run,
        now=now,
        stdout=stdout,
    )
    decisions = preview(destination, source_ids=source_ids, now=now)
    doomed = [d for d in decisions if d.delete]
    if dry_run or not doomed:
        return decisions
    if destination.deletes_left_to:
        _release_without_deleting(destination, doomed, now=now, stdout=stdout)
        return decisions
    store = open_destination(destination.to_spec())
    for decision in doomed:
        copy = decision.copy
        try:
            store.delete(copy.location)
            if copy.manifest_location and store.exists(copy.manifest_location):
                store.delete(copy.manifest_location)
        except DestinationError as exc:
            decision.delete = False
            decision.reason = f"delete failed, kept in the catalog: {exc}"
            log.warning("retention at %s: %s: %s", destination, copy.location, exc)
            audit.record(
                "retention delete failed",
                copy.run,
                detail=f"{destination.name}: {copy.location}: {exc}",
            )
            continue

        delete_globals(copy.run, destination.name, store)
        deleted_at = now or timezone.now()
        type(copy).objects.filter(pk=copy.pk).update(
            deleted_at=deleted_at, deleted_reason=decision.reason[:300]
        )
        readiness_version.bump()  # an update(): no model signal sees it
        copy.deleted_at = deleted_at
        log.info("retention deleted %s at %s (%s)", copy.location, destination, decision.reason)
        audit.record(
            "retention delete",
            copy.run,
            detail=f"{destination.name}: {copy.location} ({decision.reason})",
        )
        if stdout is not None:
            stdout.write(f"deleted {destination.name}: {copy.location} ({decision.reason})")
    return decisions


def _release_without_deleting(destination, doomed, *, now=None, stdout=None) -> None:
    """The portal does not delete here (a key that cannot, an append-only directory): nothing
    is deleted. A copy past retention leaves the catalog (no longer restorable, counted or
    checked), so that the lifecycle rule or the host removing it later is not taken for a
    loss; its bytes stay until then."""
    deleted_at = now or timezone.now()
    for decision in doomed:
        copy = decision.copy
        decision.delete = False
        decision.reason = f"{decision.reason}: {destination.deletes_left_to}"
        type(copy).objects.filter(pk=copy.pk, deleted_at__isnull=True).update(
            deleted_at=deleted_at, deleted_reason=decision.reason[:300]
        )
        readiness_version.bump()  # an update(): no model signal sees it
        copy.deleted_at = deleted_at
        audit.record(
            "retention released, not deleted",
            copy.run,
            detail=f"{destination.name}: {copy.location} ({decision.reason})",
        )
        if stdout is not None:
            stdout.write(f"released {destination.name}: {copy.location} ({decision.reason})")


def find_lost_copies(destination) -> list:
    """Mark copies whose artifact is no longer at the destination as lost; return them.

    A destination that cannot be asked (down, not mounted) marks nothing: only a clear
    "not there" counts, so RPO and readiness stop counting what is really gone.
    """
    store = open_destination(destination.to_spec())
    lost = []
    live = (
        BackupCopy.objects.live()
        .filter(destination=destination)
        .exclude(location__startswith=physical_retention.PREFIX)  # pgBackRest's, not files
    )
    for copy in live.exclude(location="").select_related("run"):
        try:
            missing = not store.exists(copy.location)
        except DestinationError as exc:
            log.warning("checking copies at %s stopped: %s", destination, exc)
            break
        if missing and copy.mark_lost(f"missing at {destination.name} (retention check)"):
            log.warning(
                "copy %s of %s is missing at %s: marked lost", copy.pk, copy.run, destination
            )
            lost.append(copy)
    return lost


def apply_all(*, dry_run=False, now=None, stdout=None) -> dict:
    """Retention over every destination; {destination name: decisions}."""
    results = {}
    for destination in Destination.objects.order_by("name"):
        try:
            if not dry_run and destination.enabled:
                for copy in find_lost_copies(destination):
                    if stdout is not None:
                        stdout.write(f"lost {destination.name}: {copy.location} (missing)")
            results[destination.name] = apply(destination, dry_run=dry_run, now=now, stdout=stdout)
        except Exception as exc:  # one broken destination does not stop the others
            log.exception("retention at %s failed", destination)
            if stdout is not None:
                stdout.write(f"{destination.name}: retention failed: {type(exc).__name__}: {exc}")
            results[destination.name] = []
    return results


def abort_stale_uploads() -> dict[str, list[str]]:
    """Remove what unfinished writes left (temp files, open S3 multipart uploads).

    Anything older than twice the task timeout plus an hour cannot belong to a live run.
    """
    older_than = settings.Q_TIMEOUT * 2 + 3600
    removed = {}
    for destination in Destination.objects.filter(enabled=True).order_by("name"):
        try:
            removed[destination.name] = open_destination(destination.to_spec()).abort_stale_uploads(
                older_than
            )
        except Exception as exc:  # an unreachable destination is retried tomorrow
            log.warning("cleaning leftovers at %s failed: %s", destination, exc)
            continue
        for item in removed[destination.name]:
            log.info("removed leftover of an unfinished write at %s: %s", destination, item)
    return removed
