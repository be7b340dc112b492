"""RPO/RTO figures computed from recorded times (time frozen), verdicts, schedules, heartbeats."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from dr_portal.runs import RunStatus
from recovery.models import RestoreTest, RTOTarget, ServiceLevel
from recovery.readiness import AT_RISK, BREACHED, OK, source_readiness
from tests.factories import BackupRunFactory, DestinationFactory, RestoreTestFactory, SourceFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def source(db, tmp_path):
    with time_machine.travel(T0 - timedelta(days=30), tick=False):
        return SourceFactory(
            system__name="tool-hub",
            name="toolhub-db",
            kind="sqlite",
            path=str(tmp_path / "x.db"),
            data_class="critical",
        )


@pytest.fixture
def destination(db, tmp_path):
    return DestinationFactory(name="local", kind="local", path=str(tmp_path))


def good_backup(source, destination, data_taken_at, size=1_000_000):
    return BackupRunFactory(
        good=True,
        source=source,
        destination=destination,
        data_taken_at=data_taken_at,
        finished=data_taken_at + timedelta(minutes=1),
        bytes_stored=size,
        live_copy__location="x",
    )


def passed_test(source, run, started, seconds=60, data_at=None, basis="backup"):
    test = RestoreTestFactory(source=source, backup_run=run)
    RestoreTest.objects.filter(pk=test.pk).update(
        status=RunStatus.SUCCEEDED,
        started=started,
        finished=started + timedelta(seconds=seconds),
        rto=timedelta(seconds=seconds),
        throughput_bps=run.bytes_stored / seconds,
        bytes_fetched=run.bytes_stored,
        data_at=data_at or run.data_taken_at,
        data_basis=basis,
    )
    return test


def test_rpo_now_and_verified_rpo_from_recorded_times(source, destination):
    with time_machine.travel(T0, tick=False):
        old = good_backup(source, destination, T0 - timedelta(hours=5))
        passed_test(
            source,
            old,
            T0 - timedelta(hours=4),
            data_at=T0 - timedelta(hours=5, minutes=3),
            basis="heartbeat",
        )
        good_backup(source, destination, T0 - timedelta(minutes=30), size=3_000_000)
        r = source_readiness([source])[source.pk]
    assert r.rpo_now == timedelta(minutes=30)
    assert r.rpo_target == timedelta(hours=1)
    assert r.rpo_state == OK
    assert r.verified_rpo == timedelta(hours=5, minutes=3)
    assert r.verified_basis == "heartbeat"
    assert r.last_rto == timedelta(seconds=60)
    # forecast: 60 s measured + 2 MB growth at 1 MB / 60 s = 180 s
    assert r.rto_forecast == timedelta(seconds=180)
    assert r.verdict == OK, r.reasons


def test_rpo_over_80_percent_is_at_risk_and_over_target_breached(source, destination):
    with time_machine.travel(T0, tick=False):
        run = good_backup(source, destination, T0 - timedelta(minutes=50))
        passed_test(source, run, T0 - timedelta(minutes=45))
        r = source_readiness([source])[source.pk]
        assert r.verdict == AT_RISK and "over 80%" in r.reasons[0]
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        r = source_readiness([source])[source.pk]
        assert r.verdict == BREACHED and "exceeds its target" in r.reasons[0]


def test_change_after_test_means_needs_verification(source, destination):
    with time_machine.travel(T0 - timedelta(minutes=20), tick=False):
        run = good_backup(source, destination, T0 - timedelta(minutes=25))
        passed_test(source, run, T0 - timedelta(minutes=20))
    with time_machine.travel(T0, tick=False):
        assert source_readiness([source])[source.pk].verdict == OK
        source.checks = [{"name": "x", "sql": "SELECT 1", "expect": "= 1"}]
        source.save()
        r = source_readiness([source])[source.pk]
    assert r.needs_verification and r.verified_rpo is None
    assert r.verdict == AT_RISK and "needs verification" in r.reasons[0]


def test_no_restore_test_within_schedule_is_at_risk(source, destination):
    with time_machine.travel(T0 - timedelta(days=9), tick=False):
        source.restore_test_schedule = "0 3 * * 0"  # weekly
        source.save()
        old = good_backup(source, destination, T0 - timedelta(days=9))
        passed_test(source, old, T0 - timedelta(days=9))
    with time_machine.travel(T0, tick=False):
        good_backup(source, destination, T0 - timedelta(minutes=10))
        r = source_readiness([source])[source.pk]
    assert r.test_overdue and r.verdict == AT_RISK


def test_measured_rto_and_forecast_against_stricter_target(source, destination):
    ServiceLevel.objects.update(rto=timedelta(hours=1))
    RTOTarget.objects.filter(failure_type="database_failure").update(target=timedelta(hours=4))
    with time_machine.travel(T0, tick=False):
        run = good_backup(source, destination, T0 - timedelta(minutes=5), size=10_000_000)
        passed_test(source, run, T0 - timedelta(minutes=4), seconds=30)
        good_backup(source, destination, T0 - timedelta(minutes=1), size=10_000_000 * 200)
        r = source_readiness([source])[source.pk]
    assert r.rto_target == timedelta(hours=1)
    assert r.rto_forecast == timedelta(seconds=6000)
    assert r.forecast_state == BREACHED and r.verdict == AT_RISK
    assert "RTO forecast" in r.reasons[0]


def test_bulk_readiness_uses_a_fixed_number_of_queries(
    source, destination, django_assert_max_num_queries
):

    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        sources = [source] + [
            SourceFactory(system=source.system, name=f"s{i}", kind="sqlite", path=source.path)
            for i in range(10)
        ]
    for s in sources:
        passed_test(s, good_backup(s, destination, T0), T0)
    # A miss: 8 to read, plus the readiness cache: version and entry read, entry stored (5 with
    # the database cache's count and savepoint).
    with django_assert_max_num_queries(15), time_machine.travel(T0, tick=False):
        result = source_readiness(sources)
    assert len(result) == 11
    # A hit: the targets and the cache's two reads, whatever the history.
    with django_assert_max_num_queries(5), time_machine.travel(T0, tick=False):
        assert source_readiness(sources) == result
    assert all(r.last_passed_test_id for r in result.values())


def test_restore_test_schedules_follow_sources(source):
    from django_q.models import Schedule

    name = f"restore test of source {source.pk}"
    schedule = Schedule.objects.get(name=name)
    assert schedule.func == "recovery.tasks.scheduled_restore_test"
    assert schedule.cron == "0 3 * * 0" and schedule.next_run is not None
    with time_machine.travel(datetime(2026, 6, 3, 12, 0, tzinfo=UTC), tick=False):  # a Wednesday
        source.restore_test_schedule = "0 4 * * *"
        source.save()
    schedule = Schedule.objects.get(name=name)
    assert schedule.cron == "0 4 * * *"
    assert schedule.next_run == datetime(2026, 6, 4, 4, 0, tzinfo=UTC)
    source.restore_test_schedule = ""
    source.save()
    assert not Schedule.objects.filter(name=name).exists()
    source.restore_test_schedule = "0 5 * * *"
    source.save()
    source.delete()
    assert not Schedule.objects.filter(name=name).exists()


def test_system_schedules_exist_after_migrate(db):
    from django_q.models import Schedule

    names = set(Schedule.objects.values_list("name", flat=True))
    assert "recovery: write heartbeats" in names
    assert "recovery: restore tests after backups" in names


def test_heartbeat_task_writes_into_sqlite_source(source, tmp_path):
    import sqlite3

    from recovery.models import HeartbeatState
    from recovery.tasks import write_heartbeats

    sqlite3.connect(source.path).close()
    source.heartbeat_enabled = True
    source.save()
    with time_machine.travel(T0, tick=False):
        assert write_heartbeats() == 1
    conn = sqlite3.connect(source.path)
    assert (
        conn.execute("SELECT beat_at FROM dr_portal_heartbeat")
        .fetchone()[0]
        .startswith("2026-06-01T12:00")
    )
    conn.close()
    assert HeartbeatState.objects.get(source=source).last_written_at == T0


def test_heartbeat_failure_is_recorded_without_secrets(db, tmp_path):
    from recovery.models import HeartbeatState
    from recovery.tasks import write_heartbeats
    from tests.recovery.test_engine import closed_port

    source = SourceFactory(
        system__name="s",
        name="pg",
        kind="postgresql",
        host="127.0.0.1",
        port=closed_port(),
        database="x",
        user="u",
        password="hunter2-secret",
        heartbeat_enabled=True,
    )
    assert write_heartbeats() == 0
    state = HeartbeatState.objects.get(source=source)
    assert state.last_error and "hunter2" not in state.last_error


def test_rpo_breach_raises_alert_and_fresh_backup_recovers_it(source, destination):
    from incidents.models import Alert
    from incidents.tasks import check_rpo_targets as check_targets

    with time_machine.travel(T0, tick=False):
        good_backup(source, destination, T0 - timedelta(hours=2))
        assert check_targets() >= 1
        alert = Alert.objects.get(key=f"rpo:{source.pk}")
        assert alert.kind == "rpo_breached" and alert.recovered is None
        good_backup(source, destination, T0 - timedelta(minutes=5))
        check_targets()
    alert.refresh_from_db()
    assert alert.recovered is not None


def test_retention_keeps_newest_backup_that_passed_a_restore_test(source, destination):
    from backups import retention

    old = good_backup(source, destination, T0 - timedelta(days=3))
    passed_test(source, old, T0 - timedelta(days=3))
    newer = good_backup(source, destination, T0 - timedelta(days=1))
    protected = retention.protected_runs([source.pk])
    assert old.pk in protected and "restore test" in protected[old.pk]
    assert newer.pk in protected  # newest good one, protected by the backups app itself
    running = RestoreTestFactory(source=source, backup_run=newer)
    assert newer.pk in retention.runs_in_use()
    running.delete()


@pytest.mark.postgres
def test_housekeeping_removes_what_a_killed_worker_left(db, tmp_path, settings):
    import os
    import time
    import uuid

    from recovery.engine.pg import create_database, database_exists, drop_database
    from recovery.tasks import housekeeping, leftover_age_s
    from tests.recovery.pgutil import SERVER

    settings.DR_RESTORE_TMP_DIR = str(tmp_path)
    old_age = int(time.time() - leftover_age_s() - 60)
    old = f"dr_scratch_{old_age}_{uuid.uuid4().hex[:8]}"
    fresh = f"dr_scratch_{int(time.time())}_{uuid.uuid4().hex[:8]}"
    old_dir, fresh_dir = tmp_path / "dr-restore-test-old", tmp_path / "dr-restore-test-new"
    old_dir.mkdir()
    (old_dir / "artifact-1").write_bytes(b"x" * 10)
    fresh_dir.mkdir()
    os.utime(old_dir, (old_age, old_age))
    create_database(SERVER, old)
    create_database(SERVER, fresh)
    try:
        result = housekeeping()
        assert old in result["scratch_dropped"] and fresh not in result["scratch_dropped"]
        assert not database_exists(SERVER, old) and database_exists(SERVER, fresh)
        assert not old_dir.exists() and fresh_dir.exists()
    finally:
        drop_database(SERVER, old)
        drop_database(SERVER, fresh)
