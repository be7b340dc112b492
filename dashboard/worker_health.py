"""Is a worker cluster running? The banner every page shows when none has beaten lately.

A dead worker used to be visible only in /health/ready's JSON while a "Run now" sat
queued; the base template shows this on every page (dr_portal.context_processors).
"""

import time
from datetime import timedelta

from backups.models import BackupRun
from dr_portal.lib.queue import WORKER_WINDOW_S, worker_last_seen
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
    if silent is not None and silent <= WORKER_WINDOW_S:
        return {}
    waiting = [
        (label, model.objects.filter(status=RunStatus.QUEUED).count()) for label, model in QUEUED
    ]
    return {
        "silent": timedelta(seconds=int(silent)) if silent is not None else None,
        "waiting": [(label, n) for label, n in waiting if n],
    }
