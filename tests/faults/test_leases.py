"""Leases under faults, with a real django-q2 cluster on the (file SQLite) portal database:

- the portal database locked for 28 s while a live failover runs: the heartbeat retries,
  the run is not reaped, a second live failover of the system is refused, the run succeeds;
- `kill -9` of the worker during a restore test and during a restore: after the reaper's
  next pass no scratch or staging database and no decrypted dump is left.
"""

import os
import signal
import sqlite3
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_q.tasks import async_task, fetch

from backups import services as backup_services
from recovery import restore_tests, restores
from recovery.failover.models import FailoverRun, LiveRunExists
from recovery.models import Restore, RestoreTest
from tests.factories import BackupJobFactory, DestinationFactory, RunbookFactory
from tests.support import data
from tests.support.cluster import cluster_log, running_cluster, wait_for, worker_pid

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REAP_AFTER_S = 4


def lock_portal_database(seconds: float):
    """Another process holds the portal database's lock for `seconds`. SQLite: the write
    lock (longer than the 20 s busy timeout, so at least one beat fails outright).
    PostgreSQL: the failover runs' table, so every beat and lease check waits."""
    if connection.vendor == "sqlite":
        locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            time.sleep(seconds)
            locker.execute("COMMIT")
        finally:
            locker.close()
        return
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
        password=s["PASSWORD"] or None, dbname=s["NAME"],
    ) as locker:  # fmt: skip
        locker.execute(f'LOCK TABLE "{FailoverRun._meta.db_table}" IN ACCESS EXCLUSIVE MODE')
        time.sleep(seconds)
        locker.commit()


def start_live_failover(tmp_path, wait_s: int):
    """A live failover: a long wait step, then a command that leaves a marker file."""
    marker = tmp_path / "dns-switched"
    runbook = RunbookFactory(
        steps=[
            {"name": "catch up", "kind": "wait", "timeout": 120, "params": {"seconds": wait_s}},
            {
                "name": "switch dns",
                "kind": "command",
                "params": {"args": ["touch", str(marker)]},
                "verification": True,
            },
        ]
    )
    return FailoverRun.start(runbook, "live"), runbook, marker


def wait_for_the_long_step(run):
    wait_for(
        lambda: run.step_runs.filter(name="catch up", status="running").exists(),
        timeout=30,
        message="the long step to start",
    )


def test_portal_database_locked_28_s_during_a_live_failover(tmp_path, settings):
    settings.DR_REAP_AFTER_S = 30  # the worker beats every 7.5 s
    run, runbook, marker = start_live_failover(tmp_path, wait_s=40)
    with running_cluster(workers=1, DR_REAP_AFTER_S=30) as proc:
        wait_for_the_long_step(run)
        lock_portal_database(28)
        released = timezone.now()

        with pytest.raises(LiveRunExists):
            FailoverRun.start(runbook, "live")
        # 9 s after the lock: a dead heartbeat thread would be 37 s or more stale by now.
        time.sleep(9)
        assert FailoverRun.reap() == 0
        row = FailoverRun.objects.get(pk=run.pk)
        assert row.status == "running", row.error
        assert row.heartbeat_at >= released - timedelta(seconds=1)

        done = wait_for(
            lambda: (
                FailoverRun.objects.exclude(status__in=["queued", "running"])
                .filter(pk=run.pk)
                .first()
            ),
            timeout=40,
            message="the failover to finish",
        )
        log = cluster_log(proc)
    assert done.status == "succeeded", done.error
    assert marker.exists()
    if connection.vendor == "sqlite":  # PostgreSQL's beats waited on the lock instead
        assert "heartbeat of FailoverRun" in log and "retrying" in log, log[-3000:]
    assert FailoverRun.objects.filter(runbook=runbook).count() == 1


def cut_worker_connections(seconds: float):
    """PostgreSQL: every session but the test's own is terminated once a second for
    `seconds` (the portal's server restarted or failed over, a network blip)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own = cursor.fetchone()[0]
    s = connection.settings_dict
    with psycopg.connect(
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
        password=s["PASSWORD"] or None, dbname=s["NAME"], autocommit=True,
    ) as killer:  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid NOT IN (pg_backend_pid(), %s)",
                (s["NAME"], own),
            )
            time.sleep(1)


def test_a_live_failover_survives_its_database_connections_cut_for_20_s(tmp_path, settings):
    """The worker's connections are cut while a step runs and while the next one starts:
    every step still runs once, the run is never reaped and it succeeds."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no connections to cut; the lock test covers it")
    settings.DR_REAP_AFTER_S = 30
    run, runbook, marker = start_live_failover(tmp_path, wait_s=10)
    with running_cluster(workers=1, DR_REAP_AFTER_S=30) as proc:
        wait_for_the_long_step(run)
        cut_worker_connections(20)
        done = wait_for(
            lambda: (
                FailoverRun.objects.exclude(status__in=["queued", "running"])
                .filter(pk=run.pk)
                .first()
            ),
            timeout=60,
            message="the failover to finish",
        )
        log = cluster_log(proc)
    assert done.status == "succeeded", (done.error, log[-3000:])
    assert marker.exists()
    assert "database unreachable, retrying" in log or "heartbeat of FailoverRun" in log


def _scratch_names(prefix):
    with data.pg_admin() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s",
            (prefix.replace("_", r"\_") + "%",),
        ).fetchall()
    return [r[0] for r in rows]


def _backed_up_pg(dbname, tmp_path):
    source = data.pg_source("big-pg", dbname)
    job = BackupJobFactory(
        name="big-pg-job",
        source=source,
        destinations=[DestinationFactory(name="pg", path=str(tmp_path / "store"))],
    )
    run = backup_services.backup_now(job)
    assert run.status == "succeeded", run.error
    return source, run


def _kill_in_phase(model, pk, phase, before_kill):
    def reached():
        row = model.objects.get(pk=pk)
        return row if row.phase == phase else None

    row = wait_for(reached, timeout=60, every=0.05, message=f"{model.__name__} in {phase}")
    before_kill(row)
    os.kill(worker_pid(row), signal.SIGKILL)
    return row


def _reaper_pass(model, pk):
    """Wait until the beat is stale, then run the reaper task in the cluster's own worker."""
    wait_for(
        lambda: (
            model.objects.get(pk=pk).heartbeat_at
            < timezone.now() - timedelta(seconds=REAP_AFTER_S + 0.5)
        ),
        timeout=30,
        message="the heartbeat to go stale",
    )
    task_id = async_task("dr_portal.tasks.reap_lost_runs")
    reaped = wait_for(lambda: fetch(task_id), timeout=60, message="the reaper task")
    assert reaped.success and reaped.result == 1, reaped.result
    return model.objects.get(pk=pk)


@pytest.mark.postgres
def test_kill_9_during_a_restore_test_leaves_no_scratch_database_and_no_plaintext(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    prefix = f"dr_scratch_k{os.getpid()}_"
    with data.pg_database(prefix="dr_faults_", mb=40) as dbname:
        source, _ = _backed_up_pg(dbname, tmp_path)
        env = dict(
            DR_REAP_AFTER_S=REAP_AFTER_S,
            DR_RESTORE_TMP_DIR=work,
            DR_SCRATCH_PREFIX=prefix,
            DR_RESTORE_JOBS=2,  # the unpacked path: a decrypted dump on disk while restoring
        )
        with running_cluster(workers=1, **env):
            test = restore_tests.start_restore_test(source)
            restore_tests.enqueue_restore_test(test)

            def mid_restore(row):
                assert _scratch_names(prefix), "no scratch database yet"
                assert list(work.rglob("artifact-*")), list(work.rglob("*"))

            _kill_in_phase(RestoreTest, test.pk, "restore", mid_restore)
            lost = _reaper_pass(RestoreTest, test.pk)
    assert lost.status == "failed" and lost.error.startswith("worker lost")
    assert _scratch_names(prefix) == []
    assert list(work.iterdir()) == []
    assert lost.temporaries == []
    assert "removed what the lost worker left" in lost.log


@pytest.mark.postgres
def test_kill_9_during_a_restore_leaves_no_staging_database_and_no_decrypted_dump(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with data.pg_database(prefix="dr_faults_", mb=40) as dbname:
        source, run = _backed_up_pg(dbname, tmp_path)
        target = f"{dbname}_copy"
        try:
            with running_cluster(workers=1, DR_REAP_AFTER_S=REAP_AFTER_S, DR_RESTORE_TMP_DIR=work):
                restore = restores.start_restore(
                    source, target=f"postgresql://postgres@127.0.0.1:5432/{target}", backup_run=run
                )
                restores.enqueue_restore(restore)

                def mid_restore(row):
                    wait_for(
                        lambda: _scratch_names(f"{target}_restoring_"),
                        timeout=10,
                        every=0.05,
                        message="the staging database",
                    )
                    assert list(work.rglob("artifact-*")), list(work.rglob("*"))

                _kill_in_phase(Restore, restore.pk, "restore", mid_restore)
                lost = _reaper_pass(Restore, restore.pk)
            assert lost.status == "failed" and lost.error.startswith("worker lost")
            assert _scratch_names(f"{target}_restoring_") == []
            assert _scratch_names(target) == []  # nothing was swapped in either
            assert list(work.iterdir()) == []
            assert lost.temporaries == []
        finally:
            with psycopg.connect(
                "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
            ) as c:
                for name in _scratch_names(target):
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
