"""Readiness of point-in-time recovery sources, from window rows (no pgBackRest needed).

RPO now comes from the recoverable window's newest point (the archive), not from the newest
base backup; a WAL gap alerts and recovers; no window (or an unreadable one) falls back to
the newest backup with the reason shown. dr_status --json carries the window.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups.engine.pgbackrest import Window
from backups.models import record_window
from incidents.models import Alert
from incidents.tasks import check_rpo_targets
from recovery.readiness import AT_RISK, BREACHED, OK, source_readiness
from tests.factories import BackupRunFactory, DestinationFactory, SourceFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SEG = "0000000100000000000000{:02X}"


@pytest.fixture
def source(db):
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        return SourceFactory(
            postgresql=True,
            name="pg-main",
            data_class="critical",  # RPO target 1 h
            pitr=True,
            data_directory="/var/lib/postgresql/15/main",
        )


@pytest.fixture
def base_backup(source):
    """The newest base backup: 5 hours old (a plain logical source would be breached)."""
    return BackupRunFactory(
        good=True,
        source=source,
        destination=DestinationFactory(),
        data_taken_at=T0 - timedelta(hours=5),
        live_copy__location="x",
    )


def window(source, *, newest_age=timedelta(seconds=45), gap=None, error=""):
    newest = None if error else T0 - newest_age
    missing = SEG.format(gap) if gap else ""
    return record_window(
        source,
        Window(
            oldest=None if error else T0 - timedelta(hours=5),
            newest=newest,
            newest_segment=SEG.format(gap - 1 if gap else 9) if not error else "",
            gap_after=SEG.format(gap - 1) if gap else "",
            missing_segment=missing,
            checked_at=T0 - timedelta(seconds=20),
            error=error,
        ),
    )


def readiness(source):
    with time_machine.travel(T0, tick=False):
        return source_readiness([source])[source.pk]


def test_rpo_now_is_the_age_of_the_newest_archived_wal(source, base_backup):
    window(source, newest_age=timedelta(seconds=45))
    r = readiness(source)
    assert r.pitr
    assert r.rpo_now == timedelta(seconds=45)  # not the 5 h of the base backup
    assert r.rpo_state == OK
    assert (r.recoverable_from, r.recoverable_to) == (
        T0 - timedelta(hours=5),
        T0 - timedelta(seconds=45),
    )
    assert r.newest_segment == SEG.format(9) and not r.wal_gap


def test_an_archive_older_than_the_target_breaches_and_alerts(source, base_backup):
    window(source, newest_age=timedelta(hours=2))
    r = readiness(source)
    assert r.verdict == BREACHED and r.rpo_now == timedelta(hours=2)
    assert any("exceeds its target" in reason for reason in r.reasons)
    with time_machine.travel(T0, tick=False):
        assert check_rpo_targets() >= 1  # also the portal's own database, never backed up here
    alert = Alert.objects.get(key=f"rpo:{source.pk}")
    assert alert.kind == "rpo_breached" and "breached: 2h" in alert.title
    # The archive catches up: the alert recovers.
    window(source, newest_age=timedelta(seconds=30))
    with time_machine.travel(T0, tick=False):
        check_rpo_targets()
    alert.refresh_from_db()
    assert alert.recovered is not None


def test_a_wal_gap_alerts_naming_the_segment_and_recovers(source, base_backup):
    window(source, newest_age=timedelta(minutes=3), gap=5)
    r = readiness(source)
    assert r.wal_gap and r.missing_segment == SEG.format(5)
    assert r.verdict == AT_RISK
    assert any(f"segment {SEG.format(5)} is missing" in reason for reason in r.reasons)
    with time_machine.travel(T0, tick=False):
        check_rpo_targets()
        check_rpo_targets()  # deduplicated: one open alert, seen twice
    alert = Alert.objects.get(key=f"wal_gap:{source.pk}")
    assert alert.kind == "wal_gap" and SEG.format(5) in alert.title
    assert alert.seen_count == 2 and alert.recovered is None
    # An unreadable window says nothing about the gap: the alert stays open.
    window(source, error="pgbackrest info: repo1 unreachable")
    with time_machine.travel(T0, tick=False):
        check_rpo_targets()
    alert.refresh_from_db()
    assert alert.recovered is None
    window(source, newest_age=timedelta(seconds=30))
    with time_machine.travel(T0, tick=False):
        check_rpo_targets()
    alert.refresh_from_db()
    assert alert.recovered is not None


def test_without_a_window_the_newest_base_backup_counts(source, base_backup):
    r = readiness(source)
    assert r.rpo_now == timedelta(hours=5) and r.verdict == BREACHED
    assert r.recoverable_to is None
    assert any("no recoverable window read from pgBackRest yet" in x for x in r.reasons)


def test_an_unreadable_window_falls_back_to_the_base_backup_with_the_error(source, base_backup):
    window(source, error="pgbackrest info: repo1 unreachable")
    r = readiness(source)
    assert r.rpo_now == timedelta(hours=5)
    assert r.window_error == "pgbackrest info: repo1 unreachable"
    assert any("recoverable window unreadable (pgbackrest info" in x for x in r.reasons)


def test_a_window_row_of_a_source_without_pitr_is_ignored(source, base_backup):
    window(source, newest_age=timedelta(seconds=10))
    source.pitr = False
    source.save()
    r = readiness(source)
    assert not r.pitr and r.rpo_now == timedelta(hours=5) and r.recoverable_to is None


def test_the_windows_of_many_sources_cost_one_query(source, base_backup):
    pitr_sources = [source] + [
        SourceFactory(postgresql=True, pitr=True, data_directory=f"/srv/pg{i}") for i in range(3)
    ]
    for each in pitr_sources:
        window(each)
    with time_machine.travel(T0, tick=False):
        with CaptureQueriesContext(connection) as one:
            source_readiness(pitr_sources[:1])
        with CaptureQueriesContext(connection) as four:
            ready = source_readiness(pitr_sources)
        with CaptureQueriesContext(connection) as plain:
            source_readiness([SourceFactory(postgresql=True)])
    assert all(r.recoverable_to for r in ready.values())
    assert len(four) == len(one)
    assert sum("pitrwindow" in q["sql"] for q in four.captured_queries) == 1
    assert not any("pitrwindow" in q["sql"] for q in plain.captured_queries)


def test_dr_status_json_carries_the_window(source, base_backup, capsys):
    window(source, newest_age=timedelta(seconds=45))
    with time_machine.travel(T0, tick=False), pytest.raises(SystemExit):
        call_command("dr_status", "--json")
    data = json.loads(capsys.readouterr().out)
    item = next(s for s in data["sources"] if s["source"] == "pg-main")
    assert item["pitr"] is True
    assert item["rpo_s"] == 45.0 == item["rpo_now_s"]
    assert item["recoverable_from"] == (T0 - timedelta(hours=5)).isoformat()
    assert item["recoverable_to"] == (T0 - timedelta(seconds=45)).isoformat()
    assert datetime.fromisoformat(item["recoverable_to"]) == T0 - timedelta(seconds=45)
    assert item["wal_gap"] is False


def test_dr_status_text_shows_the_window(source, base_backup, capsys):
    window(source, newest_age=timedelta(seconds=45))
    with time_machine.travel(T0, tick=False), pytest.raises(SystemExit):
        call_command("dr_status")
    out = capsys.readouterr().out
    assert "recoverable 2026-06-01 07:00:00 to 2026-06-01 11:59:15 UTC" in out
