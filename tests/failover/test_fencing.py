"""A failover whose lease was lost (the reaper failed it) stops before its next step and rolls
back what it did; the system is free for the next live run, which the database guards."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from recovery.failover import tasks
from recovery.failover.models import FailoverRun, LiveRunExists
from tests.factories import RunbookFactory
from tests.support.cluster import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _runbook(tmp_path):
    return RunbookFactory(
        steps=[
            {
                "name": "promote",
                "kind": "command",
                "params": {"args": ["touch", str(tmp_path / "promoted")]},
                "rollback": [
                    {
                        "name": "demote",
                        "kind": "command",
                        "params": {"args": ["touch", str(tmp_path / "rolled-back")]},
                    }
                ],
            },
            {"name": "catch up", "kind": "wait", "timeout": 60, "params": {"seconds": 20}},
            {
                "name": "switch dns",
                "kind": "command",
                "params": {"args": ["touch", str(tmp_path / "dns-switched")]},
            },
        ]
    )


def _in_thread(run_id):
    def body():
        try:
            tasks.run_failover(run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_a_reaped_failover_stops_before_its_next_step_and_rolls_back(tmp_path):
    runbook = _runbook(tmp_path)
    run = FailoverRun.start(runbook, "live")
    thread = _in_thread(run.pk)
    wait_for(lambda: run.step_runs.filter(name="catch up", status="running").exists(), timeout=20)

    # A second live run is refused by the database while the first holds the system.
    with pytest.raises(LiveRunExists):
        FailoverRun.start(runbook, "live")

    # The reaper decides the worker is gone (say its beats were lost for minutes).
    assert FailoverRun.reap(now=timezone.now() + timedelta(minutes=3)) == 1
    started = time.monotonic()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5  # the 20 s step was interrupted, not waited out

    run.refresh_from_db()
    assert run.status == "failed" and run.error.startswith("worker lost")
    assert not (tmp_path / "dns-switched").exists()  # no further step ran
    assert (tmp_path / "rolled-back").exists()  # its rollback did
    assert "no longer held by this worker" in run.log
    assert run.step_runs.get(name="switch dns").status == "not_run"
    # The system is free again: the next live run is accepted.
    nxt = FailoverRun.start(runbook, "live")
    assert nxt.status == "queued"
    nxt.request_cancel()
