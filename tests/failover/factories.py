"""Shared helpers for failover tests: a system, a runbook from definitions, running a run inline."""

from backups.models import System
from recovery.failover import tasks
from recovery.failover.models import FailoverRun, Runbook


def make_system(name="tool-hub"):
    return System.objects.get_or_create(name=name)[0]


def make_runbook(
    steps, *, system=None, name="Test runbook", failure_type="single_node", secrets=None
):
    runbook = Runbook.objects.create(
        system=system or make_system(), name=name, failure_type=failure_type
    )
    runbook.replace_steps(steps, secrets=secrets)
    return runbook


def run_inline(runbook, mode="test", user=None, **kwargs):
    """Create the run as the view does (its task is queued on commit) and execute it here."""
    run = FailoverRun.start(runbook, mode, user, **kwargs)
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    return run
