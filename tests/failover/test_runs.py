"""Runs through the task function: recording, test mode, rollbacks, RTO and its split, one live run."""

import pytest

from tests.failover.factories import make_runbook, run_inline

pytestmark = pytest.mark.django_db


def test_run_records_every_step_and_measures_rto():
    runbook = make_runbook(
        [
            {"name": "pause", "kind": "wait", "params": {"seconds": 0.05}},
            {
                "name": "check",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
        ]
    )
    run = run_inline(runbook, mode="live")
    assert run.status == "succeeded", run.error
    rows = list(run.step_runs.all())
    assert [r.status for r in rows] == ["succeeded", "succeeded"]
    assert all(r.started and r.finished and r.attempts == 1 for r in rows)
    assert run.rto is not None and run.rto.total_seconds() >= 0.05
    assert run.verdict == "met"
    assert run.automated_time.total_seconds() >= 0.05
