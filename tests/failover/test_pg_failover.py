"""A real PostgreSQL primary and standby on loopback ports: the failure is the primary stopping,
the "PostgreSQL standby promotion" runbook promotes the standby through the task function."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.utils import timezone

from dashboard import board
from incidents import lag_alerts
from incidents.models import Alert
from recovery.engine import heartbeat
from recovery.engine.pg import PgServer
from recovery.failover.builtin import create_from_template
from recovery.failover.models import ReplicationLagSample
from tests.factories import SourceFactory, SystemFactory
from tests.failover.runs import run_inline
from tests.marks import needs

pytestmark = [pytest.mark.django_db, pytest.mark.slow, pytest.mark.postgres]
BIN = Path("/usr/lib/postgresql/15/bin")
WRITES_STOPPED_S = 4  # the source's last write before the outage, in seconds


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*args, timeout=120):
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _binary(name):
    return BIN / name if (BIN / name).exists() else shutil.which(name)


def _connect(port, **kw):
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
        **kw,
    )


def _wait_for(predicate, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
@needs("postgres", "slow")
def pg_pair():
    """One pair per module: the refusal test (primary alive) runs before the promotion test."""
    base = Path(tempfile.mkdtemp(prefix="dr-failover-pg-"))
    shutil.chown(base, "postgres", "postgres")
    primary, standby = base / "primary", base / "standby"
    p_port, s_port = _free_port(), _free_port()
    started = []
    try:
        _as_postgres(_binary("initdb"), "-D", primary, "-U", "postgres", "-A", "trust", "--no-sync")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {p_port}\n"
                f"unix_socket_directories = '{base}'\nwal_level = replica\n"
                "max_wal_senders = 5\nfsync = off\nshared_buffers = 16MB\n"
            )
        _as_postgres(_binary("pg_ctl"), "-D", primary, "-l", base / "primary.log", "-w", "start")
        started.append(primary)
        with _connect(p_port) as conn:
            conn.execute("CREATE TABLE failover_probe (id int PRIMARY KEY, note text)")
            conn.execute(
                "INSERT INTO failover_probe SELECT g, 'row ' || g FROM generate_series(1, 100) g"
            )
            # The template's checks connect as dr_check: a role that can only read.
            conn.execute("CREATE ROLE dr_check LOGIN IN ROLE pg_monitor")
            conn.execute("GRANT SELECT ON failover_probe TO dr_check")
        _as_postgres(
            _binary("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            p_port,
            "-U",
            "postgres",
            "-D",
            standby,
            "-R",
            "-X",
            "stream",
            "--no-sync",
        )
        with open(standby / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {s_port}\n")
        _as_postgres(_binary("pg_ctl"), "-D", standby, "-l", base / "standby.log", "-w", "start")
        started.append(standby)
        # A row written after the base backup must arrive by streaming replication.
        with _connect(p_port) as conn:
            conn.execute("INSERT INTO failover_probe VALUES (101, 'streamed')")

        def replayed():
            with _connect(s_port) as conn:
                return conn.execute("SELECT count(*) FROM failover_probe").fetchone()[0] == 101

        _wait_for(replayed, what="the standby to replay the rows")
        yield {
            "base": base,
            "primary": primary,
            "standby": standby,
            "primary_port": p_port,
            "standby_port": s_port,
        }
    finally:
        for datadir in reversed(started):
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(_binary("pg_ctl")),
                    "-D",
                    str(datadir),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)
        assert not base.exists()


def test_promotion_is_refused_when_the_primary_still_answers(pg_pair):
    """The runbook's first step guards against split brain: a live primary stops the run."""
    runbook = create_from_template(
        SystemFactory(name="tool-hub"),
        "pg_standby_promotion",
        variables={
            "primary_host": "127.0.0.1",
            "primary_port": pg_pair["primary_port"],
            "standby_host": "127.0.0.1",
            "standby_port": pg_pair["standby_port"],
        },
    )
    runbook.steps.filter(name="Primary is truly down").update(retries=0)
    run = run_inline(runbook, mode="live")
    assert run.status == "failed"
    assert "Primary is truly down" in run.error
    assert run.rto is None
    with _connect(pg_pair["standby_port"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
    assert os.path.isdir(pg_pair["standby"])


def test_test_run_of_the_promotion_runbook_is_a_rehearsal_not_a_failure(pg_pair):
    """Test mode skips the promotion: "out of recovery" cannot pass on the standby and is
    not proven (not failed); "data is there" runs on the standby and proves it; the
    precondition runs against its test target."""
    runbook = create_from_template(
        SystemFactory(name="tool-hub"),
        "pg_standby_promotion",
        variables={
            "primary_host": "127.0.0.1",
            "primary_port": pg_pair["primary_port"],
            "standby_host": "127.0.0.1",
            "standby_port": pg_pair["standby_port"],
            "check_query": "SELECT count(*) FROM failover_probe",
            "check_expect": "= 101",
        },
    )
    # The primary stays up (the next test needs it); the precondition's test target is a
    # closed port, as a rehearsal on a test pair would point it at a stopped primary.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    runbook.steps.filter(name="Primary is truly down").update(
        retries=0, test_params={"port": closed}
    )

    run = run_inline(runbook, mode="test")

    statuses = {s.name: s.status for s in run.step_runs.all()}
    assert run.status == "succeeded", (run.error, statuses)
    assert statuses == {
        "Primary is truly down": "succeeded",
        "Standby accepts connections": "succeeded",
        "Promote the standby": "skipped",
        "New primary is out of recovery": "unproven",
        "Data is there": "succeeded",
    }
    assert (run.skipped_effects, run.unproven_checks) == (1, 1)
    assert runbook.verification()[0] == "partial"
    with _connect(pg_pair["standby_port"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True


def _pair_runbook(pg_pair):
    return create_from_template(
        SystemFactory(name="tool-hub"),
        "pg_standby_promotion",
        variables={
            "primary_host": "127.0.0.1",
            "primary_port": pg_pair["primary_port"],
            "standby_host": "127.0.0.1",
            "standby_port": pg_pair["standby_port"],
        },
    )


def test_replication_lag_is_sampled_charted_and_alerted(pg_pair, settings, viewer_client):
    """The standby the runbook promotes is sampled against the primary: caught up, then
    behind while its replay is paused (an alert over the byte threshold), then caught up
    again (the alert recovers)."""
    settings.DR_LAG_ALERT_BYTES = 64 * 1024
    runbook = _pair_runbook(pg_pair)
    assert lag_alerts.sample_replication_lag() == 0
    first = ReplicationLagSample.objects.get(runbook=runbook)
    assert first.error == "" and first.from_primary
    assert first.lag_bytes == 0 and first.lag.total_seconds() == 0
    assert first.standby == f"127.0.0.1:{pg_pair['standby_port']}/postgres"

    with _connect(pg_pair["standby_port"]) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            with _connect(pg_pair["primary_port"]) as primary:
                primary.execute(
                    "CREATE TABLE lag_filler AS SELECT g, repeat('x', 200) AS pad "
                    "FROM generate_series(1, 2000) g"
                )
            time.sleep(1.1)  # the standby receives the WAL but does not replay it
            assert lag_alerts.sample_replication_lag() == 1
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    behind = ReplicationLagSample.objects.filter(runbook=runbook).order_by("-sampled_at")[0]
    assert behind.from_primary and behind.lag_bytes > 64 * 1024, behind.lag_bytes
    assert behind.lag.total_seconds() >= 1
    open_alert = Alert.objects.get(kind="replication_lag", recovered__isnull=True)
    assert "lagging" in open_alert.title and open_alert.system_id == runbook.system_id

    page = viewer_client.get(runbook.get_absolute_url())
    assert b"Standby replication lag" in page.content and b"<polyline" in page.content

    def caught_up():
        with _connect(pg_pair["standby_port"]) as conn:
            return conn.execute("SELECT count(*) FROM lag_filler").fetchone()[0] == 2000

    _wait_for(caught_up, what="the standby to catch up")
    assert lag_alerts.sample_replication_lag() == 0
    open_alert.refresh_from_db()
    assert open_alert.recovered is not None
    with _connect(pg_pair["primary_port"]) as primary:
        primary.execute("DROP TABLE lag_filler")


def test_standby_promotion_runbook_promotes_the_real_standby(pg_pair):
    runbook = create_from_template(
        SystemFactory(name="tool-hub"),
        "pg_standby_promotion",
        variables={
            "primary_host": "127.0.0.1",
            "primary_port": pg_pair["primary_port"],
            "standby_host": "127.0.0.1",
            "standby_port": pg_pair["standby_port"],
            "check_query": "SELECT count(*) FROM failover_probe",
            "check_expect": "= 101",
        },
    )
    with _connect(pg_pair["standby_port"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("INSERT INTO failover_probe VALUES (500, 'refused on a standby')")

    # The portal's heartbeat on the primary, then writes stop N s before the outage.
    for _ in range(5):
        last_beat = heartbeat.write_pg(PgServer("127.0.0.1", pg_pair["primary_port"]))
        time.sleep(0.1)

    def beat_replayed():
        with _connect(pg_pair["standby_port"]) as conn:
            return heartbeat.read_pg(conn) == last_beat

    _wait_for(beat_replayed, what="the standby to replay the last heartbeat")
    time.sleep(WRITES_STOPPED_S)

    # The failure: the primary dies.
    _as_postgres(_binary("pg_ctl"), "-D", pg_pair["primary"], "-m", "immediate", "stop")
    declared = timezone.now()

    run = run_inline(runbook, mode="live", declared_at=declared)

    assert run.status == "succeeded", (
        run.error,
        [(s.name, s.status, s.output) for s in run.step_runs.all()],
    )
    statuses = {s.name: s.status for s in run.step_runs.all()}
    assert set(statuses.values()) == {"succeeded"}
    promote = run.step_runs.get(kind="pg_promote")
    assert "promoted" in promote.output
    assert run.rto is not None and 0 < run.rto.total_seconds() < 120
    assert run.rto_target is not None and run.verdict == "met"
    assert run.automated_time is not None and run.people_time.total_seconds() == 0
    # Data lost at promotion, measured from the newest heartbeat on the new primary.
    assert run.newest_heartbeat_at == last_beat
    assert abs(run.rpo.total_seconds() - WRITES_STOPPED_S) < 2, run.rpo
    assert run.promotion_lag_bytes == 0 and run.promotion_lag is not None
    assert "newest heartbeat on the new primary" in promote.output
    # Readiness: the live run proves the runbook, on the dashboard and in dr_status.
    SourceFactory(system=runbook.system)
    block = next(b for b in board.build(charts=False)["systems"] if b.system == runbook.system)
    assert (block.failover.value, block.failover.note) == ("verified", "live run, RTO met")
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("dr_status", "--json", stdout=out)
    status = {s["system"]: s for s in json.loads(out.getvalue())["failover"]}["tool-hub"]
    assert (status["state"], status["mode"], status["last_verified_run"]) == (
        "verified",
        "live",
        run.pk,
    )
    assert abs(status["runbooks"][0]["rpo_s"] - WRITES_STOPPED_S) < 2
    # The standby is now a primary: it accepts writes and holds every row.
    with _connect(pg_pair["standby_port"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        conn.execute("INSERT INTO failover_probe VALUES (102, 'written after failover')")
        assert conn.execute("SELECT count(*) FROM failover_probe").fetchone()[0] == 102
        assert (
            conn.execute("SELECT note FROM failover_probe WHERE id = 101").fetchone()[0]
            == "streamed"
        )
