"""Dashboard under load: concurrent readers of "/" on gunicorn while a real cluster runs backups.

    .venv/bin/python bench/dashboard_load.py [--readers 50] [--seconds 30] [--sources 20]
        [--backend postgres|sqlite] [--web-workers 3] [--threads 1] [--no-backups]
        [--json out.json]

Builds its own portal database (a unique PostgreSQL database, or a SQLite file: the embedded
set-up), migrates it with `manage.py migrate`, creates --sources small SQLite sources with a
job each and a viewer, and backs each source up once (so the dashboard has figures). Then it
starts gunicorn (`--web-workers` sync workers, as `manage.py serve` runs it) and a django-q2
cluster (2 workers), keeps every job busy (a new "run now" as soon as the previous run ends)
and runs --readers threads, each a logged-in viewer (its own session cookie) fetching "/"
in a loop over one keep-alive connection for --seconds. Reports requests, errors (any status
but 200, or a connection error), latency p50/p95/p99/max, requests per second and the
backups that finished during the window. Everything it made is removed at the end.

`hammer()` is also used by tests/load/test_dashboard_load.py against the test database.
"""

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _reader(base_url: str, cookie: str, path: str, deadline: float) -> tuple[list, list]:
    url = urlparse(base_url)
    latencies, errors = [], []
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            body = response.read()
            elapsed = time.monotonic() - started
            if response.status != 200 or b"Readiness" not in body:
                errors.append(f"{response.status} after {elapsed:.2f} s")
            else:
                latencies.append(elapsed)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.close()
    return latencies, errors


def hammer(base_url: str, cookies: list[str], readers: int, seconds: float, path: str = "/"):
    """`readers` threads GET `path` until `seconds` have passed; latency and error figures."""
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=readers) as pool:
        futures = [
            pool.submit(_reader, base_url, cookies[i % len(cookies)], path, deadline)
            for i in range(readers)
        ]
        results = [f.result() for f in futures]
    wall = time.monotonic() - started
    latencies = [x for lat, _ in results for x in lat]
    errors = [e for _, errs in results for e in errs]

    def ms(value):
        return None if value is None else round(value * 1000)

    return {
        "readers": readers,
        "seconds": round(wall, 1),
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:5],
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "max_ms": ms(max(latencies) if latencies else None),
        "mean_ms": ms(statistics.fmean(latencies) if latencies else None),
    }


def session_cookies(user, count: int) -> list[str]:
    """One real login session per reader (the database session store gunicorn reads too)."""
    from django.conf import settings
    from django.test import Client

    cookies = []
    for _ in range(count):
        client = Client()
        client.force_login(user)
        cookies.append(
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
    return cookies


class BackupFeeder(threading.Thread):
    """Keeps every job busy: queues a new run as soon as the job has no active run."""

    def __init__(self, jobs):
        super().__init__(name="backup-feeder", daemon=True)
        self.jobs, self.stop = jobs, threading.Event()
        self.queued = 0

    def run(self):
        from django.db import connection

        from backups import services

        try:
            while not self.stop.wait(0.5):
                for job in self.jobs:
                    try:
                        run = services.start_run(job, "manual")
                    except services.JobBusy:
                        continue
                    services.enqueue_run(run)  # on_commit: sent at once in autocommit
                    self.queued += 1
        finally:
            connection.close()


def _small_sqlite(path: Path, rows: int = 200) -> Path:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"wf-{n}",) for n in range(rows)])
    conn.commit()
    conn.close()
    return path


def make_sources(var_dir: Path, count: int):
    from backups.models import BackupJob, Destination, Source, System

    system, _ = System.objects.get_or_create(name="Tool Hub")
    dest = Destination.objects.create(name="local-load", kind="local", path=str(var_dir / "store"))
    (var_dir / "sources").mkdir(exist_ok=True)
    jobs = []
    for i in range(count):
        source = Source.objects.create(
            system=system,
            name=f"load-{i:03d}",
            kind="sqlite",
            data_class="critical",
            path=str(_small_sqlite(var_dir / "sources" / f"load-{i:03d}.db")),
            checks=[
                {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"}
            ],
        )
        job = BackupJob.objects.create(name=f"load-{i:03d}-job", source=source)
        job.destinations.set([dest])
        jobs.append(job)
    return jobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-backups", action="store_true", help="readers only (a baseline)")
    parser.add_argument("--json")
    args = parser.parse_args()

    from bench.worker_drain import PG_ADMIN, base_env, manage, start_cluster, stop_cluster

    var_dir = Path(tempfile.mkdtemp(prefix="dr-bench-dash-"))
    dbname = f"dr_bench_{uuid.uuid4().hex[:10]}"
    import psycopg

    if args.backend == "postgres":
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        database_url = f"postgres://postgres@127.0.0.1:5432/{dbname}"
    else:
        database_url = f"sqlite:///{var_dir / 'portal.sqlite3'}"
    env = base_env(var_dir, database_url, workers=2)
    procs = []
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        manage(env, "createcachetable")
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "dr_portal.settings"
        import django

        django.setup()
        import logging

        logging.getLogger("django-q").setLevel(logging.WARNING)  # one line per queued task
        from django.contrib.auth.models import Group, User

        from backups import services
        from backups.models import BackupRun

        viewer = User.objects.create_user("viewer", password="load-test-password-0")
        viewer.groups.add(Group.objects.get(name="viewer"))
        jobs = make_sources(var_dir, args.sources)
        for job in jobs:  # one good backup each, so every figure on the dashboard is real
            services.backup_now(job)
        cookies = session_cookies(viewer, args.readers)

        from tests.support.portal import free_port

        port = free_port()
        web_log = open(var_dir / "gunicorn.log", "w")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [
                    sys.executable, "-m", "gunicorn", "dr_portal.wsgi:application",
                    "--bind", f"127.0.0.1:{port}", "--workers", str(args.web_workers),
                    "--threads", str(args.threads), "--timeout", "60",
                ],
                cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
        procs.append(start_cluster(env, var_dir / "qcluster.log"))
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                hammer(base_url, cookies[:1], 1, 0.1)
                break
            except Exception:
                time.sleep(0.5)
        hammer(base_url, cookies, min(args.readers, 5), 2)  # warm-up: imports, templates
        before = BackupRun.objects.filter(finished__isnull=False).count()
        feeder = BackupFeeder([] if args.no_backups else jobs)
        feeder.start()
        time.sleep(0 if args.no_backups else 2)  # backups under way before the readers start
        result = hammer(base_url, cookies, args.readers, args.seconds)
        feeder.stop.set()
        feeder.join()
        finished = BackupRun.objects.filter(finished__isnull=False).count() - before
        result.update(
            backend=args.backend,
            web_workers=args.web_workers,
            threads=args.threads,
            sources=args.sources,
            backups_running=not args.no_backups,
            backups_finished_during=finished,
            backups_failed=BackupRun.objects.filter(status="failed").count(),
            machine=f"{os.cpu_count()} CPU, {platform.python_version()}, load {os.getloadavg()[0]:.1f}",
        )
        text = json.dumps(result, indent=2)
        print(text)
        if args.json:
            Path(args.json).write_text(text)
    finally:
        for proc in procs:
            stop_cluster(proc)
        if args.backend == "postgres":
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: S110 - Django may not have been set up
                pass
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
