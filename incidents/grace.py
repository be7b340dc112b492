"""Alerts people keep switched on: a new source does not page before its first backup had
a chance, and alerts about objects that were deleted close.

A source added a minute ago has "no good backup" and so a breached RPO; paging on-call for
it is noise. It pages once it has an enabled job and the grace period is over: the
`DR_NEW_SOURCE_GRACE_S` setting if set, otherwise the time to the job's first scheduled
backup plus an hour (an hour for a job without a schedule). A source that ever had a
backup run is not new.
"""

import re
from datetime import datetime, timedelta

from django.conf import settings

from backups.models import BackupJob, BackupRun, Source
from backups.validators import next_fire
from incidents.alerts import recover
from incidents.models import Alert

FIRST_BACKUP_MARGIN = timedelta(hours=1)


def grace_ends(job: BackupJob) -> datetime:
    fixed = getattr(settings, "DR_NEW_SOURCE_GRACE_S", None)
    if fixed:
        return job.created + timedelta(seconds=fixed)
    if not job.schedule:
        return job.created + FIRST_BACKUP_MARGIN
    return next_fire(job.schedule, job.timezone, job.created) + FIRST_BACKUP_MARGIN


def sources_in_grace(sources, now: datetime) -> set[int]:
    """Ids of the sources that must not page yet (no job, or new and inside the grace)."""
    ids = [s.pk for s in sources]
    ran = set(
        BackupRun.objects.filter(source_id__in=ids).values_list("source_id", flat=True).distinct()
    )
    jobs: dict[int, list[BackupJob]] = {}
    for job in BackupJob.objects.filter(source_id__in=ids, enabled=True):
        jobs.setdefault(job.source_id, []).append(job)
    quiet = set()
    for pk in ids:
        if pk in ran:
            continue
        if pk not in jobs or now < min(grace_ends(job) for job in jobs[pk]):
            quiet.add(pk)
    return quiet


# Open alerts about one object, by key: (pattern, model whose row must still exist).
OWNED_KEYS = (
    (re.compile(r"^rpo:(\d+)$"), Source),
    (re.compile(r"^restore-test:(\d+)$"), Source),
    (re.compile(r"^wal_gap:(\d+)$"), Source),
    (re.compile(r"^backup(?:-anomaly)?:(\d+)$"), BackupJob),
)


def close_orphaned_alerts() -> int:
    """Recover the open alerts whose source or job was deleted (they stayed open forever)."""
    closed = 0
    for alert in Alert.objects.filter(recovered__isnull=True, event=False).only("key", "title"):
        for pattern, model in OWNED_KEYS:
            match = pattern.match(alert.key)
            if match and not model.objects.filter(pk=int(match[1])).exists():
                recover(alert.key, title=f"Closed: the {model._meta.verbose_name} was deleted")
                closed += 1
                break
    return closed
