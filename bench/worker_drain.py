"""Worker drain: N backup jobs of small SQLite sources due at the same moment, real clusters.

    .venv/bin/python bench/worker_drain.py --jobs 200 --backend postgres --clusters 2 --workers 2
    .venv/bin/python bench/worker_drain.py --jobs 200 --backend sqlite --clusters 1 --workers 2

Builds a portal database of its own (a unique PostgreSQL database, or a SQLite file: the
embedded set-up), migrates it with `manage.py migrate` in a subprocess, creates N sources
(small SQLite files), one local destination and N daily jobs, starts the clusters
(`manage.py qcluster` subprocesses), then makes every job's schedule due at the same moment.
The clusters' own schedulers pick them up (django-q2 runs its scheduler about every 30 s, so
up to 30 s pass before the first run starts). It waits until every job has a finished run,
waits a few seconds more to catch a duplicate, stops the clusters with SIGTERM and reports:

  runs exactly once / lost / duplicated, statuses, scheduled tasks saved by django-q2,
  drain (first run started -> last run finished), from due (due -> last run finished),
  throughput (runs per second over the drain).

Prints one JSON object (also written to --json). Everything it made is removed at the end
(the PostgreSQL database is dropped even when the run fails).
"""

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
BENCH_KEY = base64.urlsafe_b64encode(b"b" * 32).decode()


def small_sqlite(path: Path, i: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO workflows (name) VALUES (?)", [(f"wf-{i}-{n}",) for n in range(20)]
    )
    conn.commit()
    conn.close()


def base_env(var_dir: Path, database_url: str, workers: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DR_", "DJANGO_"))}
    env.update(
        DR_ENV="test",
        DR_VAR_DIR=str(var_dir),
        DJANGO_SECRET_KEY="bench-secret-key-0123456789-not-for-production",
        DR_ENCRYPTION_KEYS=BENCH_KEY,
        DR_ALLOWED_ROOTS=str(var_dir),
        DATABASE_URL=database_url,
        DR_WORKERS=str(workers),
        DR_QUEUE_POLL="0.2",
    )
    env.pop("REDIS_URL", None)
    return env


def manage(env: dict, *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


def start_cluster(env: dict, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_cluster(proc: subprocess.Popen) -> None:
    """SIGTERM to the main process only (a signal to the group can deadlock django-q2)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run(jobs: int, backend: str, clusters: int, workers: int, timeout: float) -> dict:
    var_dir = Path(tempfile.mkdtemp(prefix="dr-bench-drain-"))
    dbname = f"dr_bench_{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        database_url = f"postgres://postgres@127.0.0.1:5432/{dbname}"
    else:
        database_url = f"sqlite:///{var_dir / 'portal.sqlite3'}"
    env = base_env(var_dir, database_url, workers)
    procs: list[subprocess.Popen] = []
    try:
        t0 = time.monotonic()
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "createcachetable")
        migrate_s = time.monotonic() - t0

        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "dr_portal.settings"
        import django

        django.setup()
        from django.utils import timezone
        from django_q.models import Schedule, Task

        from backups.models import BackupJob, BackupRun, Destination, Source, System
        from backups.schedules import SCHEDULED_FUNC

        # Clusters first: their scheduler's first pass comes ~30 s after start, while the
        # jobs are being created.
        procs = [start_cluster(env, var_dir / f"qcluster-{n}.log") for n in range(clusters)]
        src_dir = var_dir / "sources"
        src_dir.mkdir()
        system = System.objects.create(name="Load")
        dest = Destination.objects.create(name="local", kind="local", path=str(var_dir / "store"))
        for i in range(jobs):
            path = src_dir / f"s{i:03d}.db"
            small_sqlite(path, i)
            source = Source.objects.create(
                system=system, name=f"s{i:03d}", kind="sqlite", path=str(path)
            )
            job = BackupJob.objects.create(
                name=f"job-{i:03d}", source=source, schedule="0 3 * * *", timezone="UTC"
            )
            job.destinations.set([dest])
        schedules = Schedule.objects.filter(func=SCHEDULED_FUNC)
        assert schedules.count() == jobs, schedules.count()
        due = timezone.now()
        schedules.update(next_run=due - timedelta(seconds=1))
        due_mono = time.monotonic()

        deadline = time.monotonic() + timeout
        finished = 0
        while time.monotonic() < deadline:
            finished = BackupRun.objects.filter(finished__isnull=False).count()
            if finished >= jobs:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a cluster exited early")
            time.sleep(0.5)
        wall_s = time.monotonic() - due_mono
        time.sleep(3)  # a duplicate would show up now
        for proc in procs:
            stop_cluster(proc)

        per_job = {j.pk: j.runs.count() for j in BackupJob.objects.all().prefetch_related("runs")}
        runs = BackupRun.objects.all()
        statuses: dict[str, int] = {}
        for status in runs.values_list("status", flat=True):
            statuses[status] = statuses.get(status, 0) + 1
        first = runs.order_by("started").values_list("started", flat=True).first()
        last = runs.order_by("-finished").values_list("finished", flat=True).first()
        workers_seen = sorted(set(runs.values_list("worker", flat=True)))
        tasks = Task.objects.filter(func=SCHEDULED_FUNC)
        drain_s = (last - first).total_seconds() if first and last else None
        return {
            "backend": backend,
            "jobs": jobs,
            "clusters": clusters,
            "workers_per_cluster": workers,
            "worker_processes_seen": len(workers_seen),
            "runs": runs.count(),
            "exactly_once": sum(1 for n in per_job.values() if n == 1),
            "lost": sum(1 for n in per_job.values() if n == 0),
            "duplicated": sum(1 for n in per_job.values() if n > 1),
            "statuses": statuses,
            "scheduled_tasks_saved": tasks.count(),
            "scheduled_tasks_failed": tasks.filter(success=False).count(),
            "drain_s": round(drain_s, 2) if drain_s is not None else None,
            "from_due_s": round((last - due).total_seconds(), 2) if last else None,
            "wall_s": round(wall_s, 2),
            "runs_per_s": round(runs.count() / drain_s, 2) if drain_s else None,
            "migrate_s": round(migrate_s, 1),
            "timed_out": finished < jobs,
            "machine": f"{os.cpu_count()} CPU, {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        }
    finally:
        for proc in procs:
            stop_cluster(proc)
        if backend == "postgres":
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: S110 - Django may not have been set up
                pass
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    result = run(args.jobs, args.backend, args.clusters, args.workers, args.timeout)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
