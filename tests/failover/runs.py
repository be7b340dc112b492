"""Running a failover run inline, as the worker would, for the failover tests."""

from recovery.failover import tasks
from recovery.failover.models import FailoverRun


def run_inline(runbook, mode="test", user=None, **kwargs):
    """Create the run as the view does (its task is queued on commit) and execute it here."""
    run = FailoverRun.start(runbook, mode, user, **kwargs)
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    return run
