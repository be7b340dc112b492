"""Is a worker cluster running? The banner every page shows when none has beaten lately.

A dead worker used to be visible only in /health/ready's JSON while a "Run now" sat
queued; the base template shows this on every page (dr_portal.context_processors).
"""

import time
from datetime import timedelta

from django.db.models import CharField, Count, Value

from backups.models import BackupRun
from dr_portal.lib.queue import worker_last_seen, worker_window_s
from dr_portal.runs import RunStatus
from recovery.failover.models import FailoverRun
from recovery.models import Restore, RestoreTest

QUEUED = (
    ("backup run", BackupRun),
    ("restore test", RestoreTest),
    ("restore", Restore),
    ("failover run", FailoverRun),
)


def worker_down() -> dict:
    """Empty while a cluster beat within the window; otherwise for how long none has
    (None: not since the cache was last cleared) and how many runs wait for one."""
    seen = worker_last_seen()
    silent = None if seen is None else time.time() - seen
    if silent is not None and silent <= worker_window_s():
        return {}
    return {
        "silent": timedelta(seconds=int(silent)) if silent is not None else None,
        "waiting": [(label, n) for label, n in queued_counts() if n],
    }


def queued_counts() -> list[tuple[str, int]]:
    """How many runs of each kind wait, in one query (the banner is on every page)."""
    counts = [
        model.objects.filter(status=RunStatus.QUEUED)
        .order_by()
        .annotate(label=Value(label, output_field=CharField()))
        .values("label")
        .annotate(n=Count("pk"))
        .values_list("label", "n")
        for label, model in QUEUED
    ]
    found = dict(counts[0].union(*counts[1:], all=True))
    return [(label, found.get(label, 0)) for label, _ in QUEUED]
