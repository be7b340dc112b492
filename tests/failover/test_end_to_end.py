"""A failover through a real django-q2 cluster in a subprocess: started and confirmed through the
views, executed by a worker; a worker killed mid-run is reaped and frees the system."""

import os
import signal
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recovery.failover.models import FailoverRun
from tests.factories import RunbookFactory
from tests.support.cluster import running_cluster, wait_for, worker_pid

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _done(run):
    return lambda: FailoverRun.objects.get(pk=run.pk).status not in ("queued", "running")


def test_a_worker_runs_the_failover_and_waits_for_the_confirmation_given_in_the_portal(
    manager_client, operator_client, operator
):
    runbook = RunbookFactory(
        steps=[
            {"name": "approve", "kind": "manual", "timeout": 60, "params": {"instruction": "go?"}},
            {
                "name": "verify",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
        ]
    )
    response = manager_client.post(
        reverse("recovery:failover:start_run", args=[runbook.pk]),
        {"mode": "live", "confirm_name": runbook.system.name},
    )
    assert response.status_code == 302
    run = FailoverRun.objects.get()
    with running_cluster(workers=1):
        step = wait_for(
            lambda: run.step_runs.filter(status="waiting").first(),
            timeout=60,
            message="the manual step to wait for a person",
        )
        progress = operator_client.get(reverse("recovery:failover:run_progress", args=[run.pk]))
        assert progress.status_code == 200 and "Confirm done" in progress.content.decode()
        operator_client.post(reverse("recovery:failover:step_confirm", args=[run.pk, step.pk]))
        wait_for(_done(run), timeout=60, message="the run to finish")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.worker and run.rto and run.people_time > timedelta(0)
    assert run.step_runs.get(name="approve").confirmed_by == operator
    assert (
        operator_client.get(reverse("recovery:failover:run_progress", args=[run.pk])).status_code
        == 286
    )


def test_a_killed_worker_leaves_no_run_running_and_frees_the_system():
    runbook = RunbookFactory(
        steps=[{"name": "long", "kind": "wait", "timeout": 300, "params": {"seconds": 120}}]
    )
    run = FailoverRun.start(runbook, "live")
    with running_cluster(workers=1):
        wait_for(
            lambda: run.step_runs.filter(status="running").exists(),
            timeout=60,
            message="a worker to start the step",
        )
        run.refresh_from_db()
        os.kill(worker_pid(run), signal.SIGKILL)
        # The lease is not renewed any more; the reaper (run every minute) fails the run.
        assert FailoverRun.reap(now=timezone.now() + timedelta(minutes=3)) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker lost" in run.error
    assert run.step_runs.get().status == "failed"
    assert FailoverRun.start(runbook, "live").status == "queued"
