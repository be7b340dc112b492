"""Retention of physical (pgBackRest) copies: whole chains, never a verified or the newest one.

A chain is a full backup and the differential/incremental backups that depend on it (their
labels start with the full's). Per destination and source, a chain goes only when it is
beyond the newest `keep_last` chains (counted in fulls) AND its newest backup is older than
`keep_days`, and it holds no protected run (the newest good backup, the newest backup that
passed a restore test) and none a restore is reading. Dropping is `pgbackrest expire` of
the full (which takes its dependents and the WAL no kept backup needs), then the chain's
copies are marked deleted. retention.apply() calls this with its protection lookups.
"""

import logging
from datetime import timedelta

from django.utils import timezone

from backups.engine import pgbackrest
from backups.engine.errors import PgBackRestError
from backups.models import BackupCopy
from dr_portal import audit
from dr_portal.lib import keyring, readiness_version

log = logging.getLogger(__name__)
PREFIX = "pgbackrest:"


def physical_copies(destination, source_ids=None):
    copies = (
        BackupCopy.objects.live()
        .filter(destination=destination, location__startswith=PREFIX)
        .exclude(run__source__pitr_adopted=True)  # its DBA's expire keeps that repository
        .select_related("run", "run__source")
    )
    if source_ids is not None:
        copies = copies.filter(run__source_id__in=source_ids)
    return list(copies)


def chain_of(label: str) -> str:
    """The full backup's label a set depends on (a diff/incr is `<full>_<own stamp>D|I`)."""
    return label.split("_", 1)[0]


def plan_chains(
    copies, destination, *, protected, in_use, now
) -> list[tuple[str, list, bool, str]]:
    """[(full label, copies, drop?, reason)] for one destination, newest chain first."""
    chains: dict[tuple[int, str], list] = {}
    for copy in copies:
        label = copy.location.rsplit("/", 1)[-1]
        chains.setdefault((copy.run.source_id, chain_of(label)), []).append(copy)
    keep_last = max(1, destination.keep_last)
    max_age = timedelta(days=destination.keep_days)
    decisions = []
    by_source: dict[int, list] = {}
    for (source_id, full), members in chains.items():
        by_source.setdefault(source_id, []).append((full, members))
    for groups in by_source.values():
        groups.sort(key=lambda g: g[0], reverse=True)  # labels sort by time
        for index, (full, members) in enumerate(groups):
            newest = max(c.run.finished or c.created for c in members)
            run_ids = {c.run_id for c in members}
            reasons = [protected[r] for r in run_ids if r in protected]
            if index < keep_last:
                decisions.append((full, members, False, f"one of the newest {keep_last} chains"))
            elif now - newest <= max_age:
                decisions.append(
                    (full, members, False, f"younger than {destination.keep_days} days")
                )
            elif run_ids & in_use:
                decisions.append((full, members, False, "being read by a restore or restore test"))
            elif reasons:
                decisions.append((full, members, False, f"holds the {reasons[0]}"))
            else:
                reason = (
                    f"chain older than {destination.keep_days} days and beyond the newest "
                    f"{keep_last} full backups"
                )
                decisions.append((full, members, True, reason))
    return decisions


def apply(destination, *, protected, in_use, source_ids=None, dry_run=False, now=None, stdout=None):
    """Expire the chains the policy drops; returns plan_chains()'s decisions."""
    now = now or timezone.now()
    decisions = plan_chains(
        physical_copies(destination, source_ids),
        destination,
        protected=protected,
        in_use=in_use,
        now=now,
    )
    if dry_run:
        return decisions
    for full, members, drop, reason in decisions:
        if drop:
            _expire(destination, full, members, reason, now, stdout)
    return decisions


def _expire(destination, full, members, reason, now, stdout):
    source = members[0].run.source
    try:
        repos = source.physical_destinations()
        stanza = source.to_stanza(repos)
        number = [d.pk for d in repos].index(destination.pk) + 1
        pgbackrest.expire(stanza, full, repo=number)
    except (PgBackRestError, ValueError, keyring.KeyRingError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("retention at %s: chain %s of %s kept: %s", destination, full, source, message)
        audit.record(
            "retention delete failed",
            members[0].run,
            detail=f"{destination.name}: {full}: {message}",
        )
        return
    BackupCopy.objects.filter(pk__in=[c.pk for c in members]).update(
        deleted_at=now, deleted_reason=f"pgbackrest expire {full}: {reason}"[:300]
    )
    readiness_version.bump()  # an update(): no model signal sees it
    for copy in members:
        audit.record(
            "retention delete", copy.run, detail=f"{destination.name}: {copy.location} ({reason})"
        )
    log.info("retention expired chain %s of %s at %s (%s)", full, source, destination, reason)
    if stdout is not None:
        stdout.write(
            f"expired {destination.name}: {full} and {len(members) - 1} dependent backups ({reason})"
        )
