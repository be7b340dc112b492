"""Which destination's copy a scheduled restore test reads, so that every copy gets proven.

A restore test reads the best copy (local first) unless pinned to a destination; left
alone, the off-site copy would never be read. So scheduled tests rotate: each reads the
copy, at one of the destinations holding the source's newest good backup, that a passed
test of this source read longest ago (never first). And every hour, a source with
scheduled restore tests gets a test pinned to any such destination whose copy no passed
test read in DR_COPY_TEST_EVERY_DAYS (0: rotation only), at most one a day per
destination, so a failing copy is retried daily, not hourly.

Pairs are per source and destination: a test of source A from the off-site bucket says
nothing about source B's copy there. Archive-class copies are left out (they need a
retrieval before they can be read); so are disabled destinations.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from backups.models import Destination, Source, Trigger
from dr_portal.runs import DONE, RunStatus
from recovery import restore_tests, runner
from recovery.copies import newest_good_backup, rank_copies
from recovery.models import RestoreTest

log = logging.getLogger(__name__)

# A test of a (source, destination) pair that finished this recently is not repeated by
# the hourly sweep, whatever its outcome: a broken copy is retried daily and alerts daily.
RETRY_AFTER = timedelta(days=1)


def readable_destinations(source: Source) -> list[Destination]:
    """Enabled destinations holding a readable (not archive-class) copy of the newest good
    backup; for a point-in-time source, those holding its pgBackRest repository."""
    if source.pitr:
        return [d for d in source.physical_destinations() if d.enabled]
    run = newest_good_backup(source)
    if run is None:
        return []
    readable, _ = rank_copies(run)
    return [c.destination for c in readable if c.destination.enabled]


def last_read(source: Source, *, passed_only: bool) -> dict[int, datetime]:
    """{destination id: when a finished test of `source` last read (or was pinned to) it}."""
    tests = RestoreTest.objects.filter(source=source, finished__isnull=False)
    if passed_only:
        tests = tests.filter(status=RunStatus.SUCCEEDED)
    else:
        tests = tests.filter(status__in=list(DONE))
    found: dict[int, datetime] = {}
    for field in ("copy_destination", "destination"):
        rows = (
            tests.exclude(**{f"{field}__isnull": True}).values(field).annotate(at=Max("finished"))
        )
        for row in rows.order_by():
            at = row["at"]
            if row[field] not in found or at > found[row[field]]:
                found[row[field]] = at
    return found


def next_destination(source: Source) -> Destination | None:
    """The destination whose copy a passed test read longest ago (never read first)."""
    candidates = readable_destinations(source)
    if not candidates:
        return None
    proven = last_read(source, passed_only=True)
    never = datetime.min.replace(tzinfo=timezone.get_current_timezone())
    return min(candidates, key=lambda d: (proven.get(d.pk, never), d.name))


def overdue(source: Source, now: datetime | None = None) -> list[Destination]:
    """Destinations of `source` whose copy no passed test read in the period, and that no
    test tried in the last day."""
    days = settings.DR_COPY_TEST_EVERY_DAYS
    if not days:
        return []
    now = now or timezone.now()
    proven = last_read(source, passed_only=True)
    tried = last_read(source, passed_only=False)
    return [
        d
        for d in readable_destinations(source)
        if (proven.get(d.pk) is None or proven[d.pk] < now - timedelta(days=days))
        and (tried.get(d.pk) is None or tried[d.pk] < now - RETRY_AFTER)
    ]


def queue_overdue(now: datetime | None = None) -> int:
    """Queue one pinned test per source with an overdue destination (sources with scheduled
    restore tests only); returns how many were queued."""
    queued = 0
    for source in Source.objects.exclude(restore_test_schedule="").order_by("name"):
        due = overdue(source, now)
        if not due:
            continue
        try:
            test = restore_tests.start_restore_test(
                source, trigger=Trigger.SCHEDULED, destination=due[0]
            )
        except (runner.Busy, restore_tests.NoCopyThere) as exc:
            log.info("copy restore test of %s at %s not queued: %s", source, due[0], exc)
            continue
        restore_tests.enqueue_restore_test(test)
        queued += 1
    return queued
