"""The data lost at promotion and the lag it promoted with: from a promotion's facts to the
run's fields, and into the compliance report."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from dashboard import compliance
from recovery.failover.models import FailoverRun
from recovery.failover.tasks import promotion_figures
from tests.factories import RunbookFactory, SystemFactory

pytestmark = pytest.mark.django_db
DECLARED = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def _run(runbook, **fields):
    fields.setdefault(
        "finished", DECLARED + timedelta(minutes=1)
    )  # the report counts finished runs
    return FailoverRun.objects.create(
        runbook=runbook, system=runbook.system, declared_at=DECLARED, **fields
    )


def test_data_lost_is_declared_failure_minus_newest_heartbeat():
    run = FailoverRun(declared_at=DECLARED)
    beat = DECLARED - timedelta(seconds=7.5)
    fields = promotion_figures(
        run, {"lag_bytes": 4096, "lag_seconds": 7.6, "newest_heartbeat": beat}
    )
    assert fields == {
        "promotion_lag_bytes": 4096,
        "promotion_lag": timedelta(seconds=7.6),
        "newest_heartbeat_at": beat,
        "rpo": timedelta(seconds=7.5),
    }


def test_a_heartbeat_newer_than_the_declaration_loses_nothing():
    run = FailoverRun(declared_at=DECLARED)
    fields = promotion_figures(run, {"newest_heartbeat": DECLARED + timedelta(seconds=3)})
    assert fields["rpo"] == timedelta(0)


def test_without_a_heartbeat_or_a_promotion_nothing_is_claimed():
    run = FailoverRun(declared_at=DECLARED)
    assert promotion_figures(run, {}) == {}
    fields = promotion_figures(run, {"lag_bytes": None, "lag_seconds": None})
    assert "rpo" not in fields and "promotion_lag" not in fields


def test_compliance_report_lists_failover_runs_with_rto_and_data_lost():
    system = SystemFactory(name="tool-hub")
    other = SystemFactory(name="wiki")
    runbook = RunbookFactory(system=system, name="Promote")
    _run(
        runbook,
        mode="live",
        status="succeeded",
        rto=timedelta(seconds=42),
        rto_target=timedelta(minutes=15),
        verdict="met",
        rpo=timedelta(seconds=4),
        promotion_lag_bytes=0,
    )
    _run(runbook, mode="test", status="succeeded", skipped_effects=1)
    _run(RunbookFactory(system=other, name="Other"), mode="live", status="failed")
    start, end = compliance.period(date(2026, 5, 1), date(2026, 5, 31))
    with time_machine.travel(datetime(2026, 6, 2, tzinfo=UTC), tick=False):
        report = compliance.build(start, end, [system])
    failovers = report["failovers"]
    assert (failovers["count"], failovers["live"], failovers["test"]) == (2, 1, 1)
    live = failovers["runs"][0]
    assert live["mode"] == "live" and live["system"] == "tool-hub"
    assert (live["rto_s"], live["rpo_s"], live["lag_at_promotion_bytes"]) == (42.0, 4.0, 0)
    assert failovers["runs"][1]["not_exercised"] == "1 side-effect step not exercised"
