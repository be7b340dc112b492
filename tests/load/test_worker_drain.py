"""Backup jobs due at the same moment on real clusters: every run happens exactly once.

The in-suite size (40 jobs) keeps CI short; `bench/worker_drain.py --jobs 200` is the full
measurement recorded in bench/RESULTS.md. Both set-ups run side by side (each in its own
subprocess and database): the scale-out one, two clusters of two workers on one PostgreSQL
database, and the embedded one, one cluster of two workers on a SQLite file.
"""

import json
import subprocess
import sys

import pytest

from tests.support.cluster import ROOT

pytestmark = [pytest.mark.load, pytest.mark.slow]

JOBS = 40


def start(backend, clusters, workers, out):
    """bench/worker_drain.py in a subprocess: it builds, migrates and drops its own database."""
    return subprocess.Popen(
        [
            sys.executable,
            "bench/worker_drain.py",
            f"--jobs={JOBS}",
            f"--backend={backend}",
            f"--clusters={clusters}",
            f"--workers={workers}",
            "--timeout=240",
            f"--json={out}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_due_jobs_drain_exactly_once_on_postgres_and_sqlite(tmp_path):
    setups = {
        "postgres": start("postgres", 2, 2, tmp_path / "postgres.json"),
        "sqlite": start("sqlite", 1, 2, tmp_path / "sqlite.json"),
    }
    results = {}
    for name, proc in setups.items():
        output, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, output[-3000:]
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    for r in results.values():
        assert not r["timed_out"], r
        assert r["runs"] == JOBS, r
        assert (r["exactly_once"], r["lost"], r["duplicated"]) == (JOBS, 0, 0), r
        assert r["statuses"] == {"succeeded": JOBS}, r
        assert r["scheduled_tasks_saved"] == JOBS and r["scheduled_tasks_failed"] == 0, r
    # The scale-out set-up really spread the work over both clusters' workers.
    assert results["postgres"]["worker_processes_seen"] >= 3, results["postgres"]
