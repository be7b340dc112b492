"""Replication lag sampling without a server: an unreachable standby alerts, a runbook that
no longer names it closes the alert; thresholds."""

import socket
from datetime import timedelta

import pytest

from incidents import lag_alerts
from incidents.models import Alert
from recovery.failover import lag
from recovery.failover.models import ReplicationLagSample
from tests.factories import RunbookFactory

pytestmark = pytest.mark.django_db


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runbook(port):
    return RunbookFactory(
        steps=[
            {
                "name": "Promote",
                "kind": "pg_promote",
                "params": {"host": "127.0.0.1", "port": port, "connect_timeout": 1},
            }
        ]
    )


def test_unreachable_standby_is_sampled_as_an_error_and_alerts_until_it_is_gone():
    port = _closed_port()
    runbook = _runbook(port)
    assert lag_alerts.sample_replication_lag() == 1
    sample = ReplicationLagSample.objects.get(runbook=runbook)
    assert sample.lag_bytes is None and sample.lag is None
    assert sample.error.startswith(f"standby 127.0.0.1:{port}/postgres:")
    open_alert = Alert.objects.get(kind="replication_lag", recovered__isnull=True)
    assert "lag not measurable" in open_alert.title
    assert open_alert.key == f"replication_lag:{runbook.pk}:{sample.step_id}"

    runbook.steps.all().delete()  # the runbook no longer promotes that standby
    assert lag_alerts.sample_replication_lag() == 0
    open_alert.refresh_from_db()
    assert open_alert.recovered is not None


def test_runbooks_without_a_standby_are_not_sampled():
    RunbookFactory(
        steps=[{"name": "Up", "kind": "pg_ready", "params": {"host": "127.0.0.1", "port": 1}}]
    )
    assert lag.sample_all() == []


def test_thresholds(settings):
    settings.DR_LAG_ALERT_S, settings.DR_LAG_ALERT_BYTES = 60, 1000
    ok = ReplicationLagSample(lag=timedelta(seconds=60), lag_bytes=1000)
    assert lag.over_threshold(ok) == ""
    late = ReplicationLagSample(lag=timedelta(seconds=61), lag_bytes=10)
    assert "behind (threshold 1m" in lag.over_threshold(late)
    big = ReplicationLagSample(lag=timedelta(0), lag_bytes=1001)
    assert lag.over_threshold(big) == "1001 bytes of WAL behind (threshold 1000)"
    settings.DR_LAG_ALERT_S = settings.DR_LAG_ALERT_BYTES = 0  # thresholds off
    assert lag.over_threshold(late) == lag.over_threshold(big) == ""


def test_metrics_give_the_newest_lag_of_each_standby(django_assert_max_num_queries):
    from django.utils import timezone  # noqa: PLC0415

    from dashboard import metrics  # noqa: PLC0415

    runbook = RunbookFactory(name="A promote")
    other = RunbookFactory(name="B promote", system=runbook.system)
    now = timezone.now().replace(microsecond=0)
    for minutes, lag_bytes in ((3, 4096), (1, 512)):
        ReplicationLagSample.objects.create(
            runbook=runbook, standby="db2:5432/postgres", lag_bytes=lag_bytes,
            lag=timedelta(seconds=minutes), sampled_at=now - timedelta(minutes=minutes),
        )  # fmt: skip
    ReplicationLagSample.objects.create(
        runbook=other, standby="db3:5432/postgres", error="connection refused", sampled_at=now
    )
    with django_assert_max_num_queries(3):
        samples = lag.newest_per_standby()
    assert [(s.standby, s.lag_bytes) for s in samples] == [
        ("db2:5432/postgres", 512),
        ("db3:5432/postgres", None),
    ]
    text = metrics.collect()
    labels = f'system="{runbook.system.name}",runbook="{runbook.name}",standby="db2:5432/postgres"'
    assert f"dr_replication_lag_bytes{{{labels}}} 512" in text
    assert f"dr_replication_lag_seconds{{{labels}}} 1.0" in text
    assert "4096" not in text  # only the newest sample counts
    other_labels = (
        f'system="{other.system.name}",runbook="{other.name}",standby="db3:5432/postgres"'
    )
    assert f"dr_replication_lag_bytes{{{other_labels}}} NaN" in text
