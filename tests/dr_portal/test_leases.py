"""Leases that survive a blip: beats retry, use the database clock, and a reaped run is fenced."""

import logging
import sqlite3
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from backups.models import BackupRun
from dr_portal.runs import IllegalTransition, LeaseLost, RunStatus
from tests.factories import BackupJobFactory, BackupRunFactory, SourceFactory, SystemFactory


def _run():
    system = SystemFactory(name="s")
    source = SourceFactory(system=system, name="db", kind="sqlite", path="/tmp/x.db")
    job = BackupJobFactory(name="j", source=source)
    return BackupRunFactory(job=job, source=source)


def test_a_worker_105_s_behind_is_not_reaped_for_its_clock(db, settings):
    """Beats and the reaper's cut-off both come from the database server's clock."""
    settings.DR_REAP_AFTER_S = 60
    run = _run()
    behind = timezone.now() - timedelta(seconds=105)
    with time_machine.travel(behind, tick=True):  # the worker's clock is 105 s slow
        assert run.claim()
        assert run.beat("streaming")
    assert BackupRun.reap() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert abs(run.heartbeat_at - timezone.now()) < timedelta(seconds=10)


def test_a_reaped_run_is_fenced_out(db, settings):
    settings.DR_REAP_AFTER_S = 1
    run = _run()
    assert run.claim()
    run.check_lease()  # held: no exception
    BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert BackupRun.reap() == 1
    # The worker still runs: every beat is refused and the next phase stops it.
    assert run.beat("storing") is False
    with pytest.raises(LeaseLost, match="worker lost"):
        run.enter_phase("storing")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.phase == ""


def test_the_reaper_spares_a_run_that_beat_after_it_looked(db, settings):
    """The failing update re-checks the stale beat: a beat in between keeps the run alive."""
    settings.DR_REAP_AFTER_S = 60
    run = _run()
    assert run.claim()
    BackupRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    stale = BackupRun.objects.get(pk=run.pk)
    run.beat()  # lands after the reaper's query
    from django.db.models import Q

    cutoff = timezone.now() - timedelta(seconds=60)
    with pytest.raises(IllegalTransition, match="already running"):
        stale.finish(
            RunStatus.FAILED,
            "worker lost",
            only_if=Q(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff),
        )
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_heartbeat_survives_the_portal_database_locked_for_a_while(settings, caplog):
    """One failed beat (database locked longer than the busy timeout) never ends the thread."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's whole-database lock; on PostgreSQL a beat waits on a row lock")
    settings.DR_REAP_AFTER_S = 2  # a beat every 0.5 s
    run = _run()
    assert run.claim()
    path = connection.settings_dict["NAME"]
    options = connection.settings_dict.setdefault("OPTIONS", {})
    old_timeout = options.get("timeout")
    options["timeout"] = 0.3  # the beat thread's own connection gives up fast
    locker = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        with caplog.at_level(logging.WARNING, logger="dr_portal.runs"):
            with run.heartbeat():
                time.sleep(0.8)
                locker.execute("BEGIN IMMEDIATE")  # another writer holds the database
                locked_at = timezone.now()
                time.sleep(2.5)
                locker.execute("COMMIT")
                released = timezone.now()
                time.sleep(2.0)
                run.refresh_from_db()
    finally:
        if old_timeout is None:
            options.pop("timeout", None)
        else:
            options["timeout"] = old_timeout
        locker.close()
    assert any("failed" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
    assert any("is back after" in r.getMessage() for r in caplog.records)
    assert run.heartbeat_at > released, (run.heartbeat_at, locked_at, released)
    assert not run.lease_lost


@pytest.mark.django_db(transaction=True)
def test_heartbeat_thread_notices_the_run_was_reaped(settings):
    settings.DR_REAP_AFTER_S = 1  # a beat every 0.25 s
    run = _run()
    assert run.claim()
    with run.heartbeat():
        BackupRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
        deadline = time.monotonic() + 5
        while not run.lease_lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.lease_lost
