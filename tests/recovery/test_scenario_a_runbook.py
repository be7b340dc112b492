"""Database failure, scenario A, as one timed runbook: stop the application (a webhook, its
URL must stop answering), restore the database into a registered target (the portal's
restore path), start the application (a command), check it serves the restored data.
The application is a real process the test starts; the database a real PostgreSQL one."""

import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from recovery.engine.pg import create_database
from tests.factories import RestoreTargetFactory, RunbookFactory
from tests.failover.runs import run_inline
from tests.recovery.pgutil import SERVER, fill_toolhub
from tests.support.data import backup

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
APP = Path(__file__).with_name("demo_app.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url):
    import urllib.request  # noqa: PLC0415 - test helper

    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None, ""


def _wait_up(url, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _get(url)[0] is not None:
            return
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _kill(pidfile: Path):
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def _steps(app_url, port, dbname, pidfile, source, target, run_id):
    return [
        {
            "name": "Stop the application",
            "kind": "app_stop",
            "params": {"webhook": f"{app_url}/shutdown", "check_url": f"{app_url}/"},
            "timeout": 20,
        },
        {
            "name": "Restore the database",
            "kind": "restore",
            "params": {"source": source, "target": target, "backup": run_id, "overwrite": True},
            "timeout": 300,
        },
        {
            "name": "Start the application",
            "kind": "app_start",
            "params": {
                # setsid -f: the application outlives the step's process group, as a
                # service manager's would.
                "command": [
                    "setsid",
                    "-f",
                    sys.executable,
                    str(APP),
                    str(port),
                    dbname,
                    str(pidfile),
                ],  # fmt: skip
                "check_url": f"{app_url}/",
            },
            "timeout": 90,  # a Python app starting on a 2-core machine under a full suite
        },
        {
            "name": "The application serves the restored data",
            "kind": "http_check",
            "verification": True,
            "params": {"url": f"{app_url}/", "body_contains": "workflows=50"},
        },
    ]


def test_scenario_a_stop_restore_start_is_one_timed_runbook(
    pg_source, settings, tmp_path, work_dir
):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    run_backup = backup(pg_source)  # 50 workflows
    target_db = f"dr_scenario_a_{uuid.uuid4().hex[:8]}"
    target = RestoreTargetFactory(
        name="app-db", database=target_db, allow_replace=True, sources=[pg_source]
    )
    pidfile, port = tmp_path / "app.pid", _free_port()
    app_url = f"http://127.0.0.1:{port}"
    # The failure: the application's database lost its data (5 workflows left).
    create_database(SERVER, target_db)
    fill_toolhub(SERVER.with_db(target_db), workflows=5, executions=10)
    try:
        os.spawnv(os.P_NOWAIT, sys.executable,
                  [sys.executable, str(APP), str(port), target_db, str(pidfile)])  # fmt: skip
        _wait_up(f"{app_url}/")
        assert _get(f"{app_url}/") == (200, "workflows=5")
        runbook = RunbookFactory(
            system=pg_source.system,
            name="Database failure, scenario A",
            failure_type="database_failure",
            steps=_steps(
                app_url, port, target_db, pidfile, pg_source.name, target.name, run_backup.pk
            ),  # fmt: skip
        )

        # A rehearsal: the app steps are skipped, the restore is a restore test in scratch,
        # the final check cannot pass before the skipped start (not proven).
        rehearsal = run_inline(runbook, mode="test")
        statuses = [s.status for s in rehearsal.step_runs.order_by("position")]
        assert statuses == ["skipped", "succeeded", "skipped", "unproven"], rehearsal.error
        scratch = rehearsal.step_runs.get(kind="restore").output
        assert "in scratch: passed" in scratch and "scratch copy removed" in scratch
        assert _get(f"{app_url}/") == (200, "workflows=5")  # nothing was touched

        run = run_inline(runbook, mode="live")

        steps = list(run.step_runs.order_by("position"))
        assert run.status == "succeeded", (run.error, [(s.name, s.output) for s in steps])
        assert [s.status for s in steps] == ["succeeded"] * 4
        assert "down after" in steps[0].output and "no answer" in steps[0].output
        assert f"of backup run #{run_backup.pk} into app-db: succeeded" in steps[1].output
        assert "up after" in steps[2].output
        assert _get(f"{app_url}/") == (200, "workflows=50")
        # RTO by phase: each step's time; the run's RTO ends at the last check.
        phases = {s.name: s.duration.total_seconds() for s in steps}
        assert all(t > 0 for t in phases.values()), phases
        assert run.rto is not None and run.verdict in ("met", "missed")
        assert run.rto.total_seconds() >= sum(phases.values()) - 0.5
        print("scenario A RTO by phase:", phases, "RTO", run.rto)
        assert "previous data kept aside" in steps[1].output  # the broken database
    finally:
        _kill(pidfile)
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            # the target and the broken database the restore kept aside beside it
            names = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{target_db}%"]
            ).fetchall()
            for (name,) in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
