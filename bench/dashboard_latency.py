"""Dashboard latency at scale: render time and query count with a large recorded history.

    .venv/bin/python bench/dashboard_latency.py [--runs 1000000] [--tests 50000]
        [--sources 200] [--systems 10] [--repeat 30] [--append-results]

Creates a PostgreSQL database with a unique name on 127.0.0.1:5432, migrates it, and fills
it: the configuration (systems, sources, jobs, destinations, targets, drill plans) through
the ORM, the history with INSERT … SELECT generate_series (the fast form of bulk_create):
  - backup runs spread over the sources, hourly, about 2 % failed and 1 % partial;
  - two copies per good run (local, S3) and a weekly Glacier copy, with retention applied as
    the portal would (local copies older than 7 days, S3 older than 30 days deleted);
  - restore tests spread over the sources (about 5 % failed), each on the run it tested;
  - incidents, follow-ups and drill runs (a few hundred).
Then VACUUM ANALYZE (as autovacuum would), and renders "/" (the whole dashboard),
"/dashboard/fragment" (htmx), "/metrics" and the run history (first page, one source, one
source's failures, a keyset page halfway back) with the Django test client as a logged-in
viewer, --repeat times each after a warm-up, and prints p50/p95 wall time, this process's
CPU time (steadier than wall time on a shared machine), the number of queries and the
1-minute load average. The database is dropped at the end unless --keep / --name.
--append-results appends a section to bench/RESULTS.md.

Size and time (PostgreSQL 15, 2 cores): 1,000,000 runs take ~1 GB of disk and 2-7 minutes
to fill (idle vs. load 9); 10,000,000 runs take ~11 GB (runs 2.4 GB heap + 2.8 GB with
indexes, ~20 M copies 6 GB, plus WAL while filling: keep 20 GB free) and 45-60 minutes on
a loaded 2-core machine (~10 runs, ~20 copies inserted per millisecond). Fill once and
iterate: `--runs 10000000 --sources 500 --name dr_bench_10m` keeps it, then
`--database dr_bench_10m` measures again without refilling.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432/"


def psql(sql: str, db: str = "postgres"):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qAt", "-v", "ON_ERROR_STOP=1"],
        input=sql,
        text=True,
        check=True,
        capture_output=True,
    )


def insert_select(model, exprs: dict, from_sql: str, cursor):
    """INSERT INTO model's table every concrete column: `exprs` or the field's plain default."""
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(f'"{field.column}"')
        if field.attname in exprs:
            values.append(exprs[field.attname])
        elif field.null:
            values.append("NULL")
        elif field.get_internal_type() == "JSONField":
            values.append("'[]'::jsonb" if field.default is list else "'{}'::jsonb")
        elif field.get_internal_type() == "BooleanField":
            values.append("true" if field.default is True else "false")
        elif field.get_internal_type() in (
            "IntegerField",
            "BigIntegerField",
            "PositiveIntegerField",
            "FloatField",
            "PositiveSmallIntegerField",
        ):
            values.append("0")
        elif field.get_internal_type() == "DateTimeField":
            values.append("now()")
        else:
            values.append("''")
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(columns)}) '
        f"SELECT {', '.join(values)} {from_sql}"
    )
    cursor.execute(sql)


def fill(args):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from backups.models import BackupCopy, BackupJob, BackupRun, Destination, Source, System
    from drills.models import DrillPlan, DrillRun
    from incidents.models import FollowUp, Incident
    from recovery.models import RestoreTest, RPOTarget, RTOTarget, ServiceLevel

    now = timezone.now()
    for data_class, hours in (("critical", 1), ("important", 24), ("non_critical", 168)):
        RPOTarget.objects.update_or_create(
            data_class=data_class, defaults={"target": timedelta(hours=hours)}
        )
    RTOTarget.objects.update_or_create(
        failure_type="database_failure", defaults={"target": timedelta(hours=1)}
    )
    ServiceLevel.objects.get_or_create(pk=1)
    local = Destination.objects.create(name="bench-local", kind="local", path="/tmp/bench")
    s3 = Destination.objects.create(name="bench-s3", kind="s3", bucket="bench", keep_days=30)
    glacier = Destination.objects.create(
        name="bench-glacier", kind="s3", bucket="bench-archive", storage_class="GLACIER"
    )
    systems = [System.objects.create(name=f"system-{i:02d}") for i in range(args.systems)]
    classes = ["critical", "important", "non_critical"]
    start = now - timedelta(days=400)
    sources = []
    for i in range(args.sources):
        src = Source.objects.create(
            system=systems[i % len(systems)],
            name=f"source-{i:03d}",
            kind="sqlite",
            path=f"/tmp/bench-{i}.db",
            data_class=classes[i % 3],
            restore_test_schedule="0 3 * * *",
        )
        sources.append(src)
    Source.objects.update(config_changed_at=start, created=start)
    for src in sources:
        job = BackupJob(name=f"job-{src.name}", source=src, schedule="0 * * * *")
        super(BackupJob, job).save()  # skip the django-q2 schedule sync: no cluster here
        job.destinations.set([local, s3])
    BackupJob.objects.update(config_changed_at=start, created=start)
    first_src = sources[0].pk
    n_src = len(sources)
    per_source = max(1, args.runs // n_src)

    with connection.cursor() as cur:
        t = time.monotonic()
        # run g (0-based) belongs to source g % n, and is the k-th (g / n) newest of its source:
        # hourly, newest 20 minutes ago.
        at = f"(now() - interval '20 minutes' - ((g / {n_src}) * interval '1 hour'))"
        status = (
            "(CASE WHEN g % 50 = 7 THEN 'failed' WHEN g % 100 = 13 THEN 'partial' "
            "ELSE 'succeeded' END)"
        )
        insert_select(
            BackupRun,
            {
                "source_id": f"{first_src} + g % {n_src}",
                "source_name": f"'source-' || lpad((g % {n_src})::text, 3, '0')",
                "job_name": "'bench'",
                "status": status,
                "queued": at,
                "started": at,
                "finished": f"{at} + interval '2 minutes'",
                "data_taken_at": f"(CASE WHEN g % 50 = 7 THEN NULL ELSE {at} END)",
                "bytes_read": "50000000 + (g % 997) * 1000",
                "bytes_stored": "20000000 + (g % 997) * 400",
                "sha256": "md5(g::text) || md5(g::text)",
                "trigger": "'scheduled'",
                "restorable": "true",
            },
            f"FROM generate_series(0, {per_source * n_src - 1}) AS g",
            cur,
        )
        print(f"  runs inserted in {time.monotonic() - t:.1f}s", flush=True)
        t = time.monotonic()
        for dest, keep_days, where in (
            (local, 7, ""),
            (s3, 30, ""),
            (
                glacier,
                365,
                "AND extract(dow from r.data_taken_at) = 0 AND extract(hour from r.data_taken_at) = 2",
            ),
        ):
            insert_select(
                BackupCopy,
                {
                    "run_id": "r.id",
                    "destination_id": str(dest.pk),
                    "location": "'bench/' || r.id",
                    "bytes_stored": "r.bytes_stored",
                    "storage_class": f"'{dest.storage_class}'",
                    "ok": "true",
                    "created": "r.finished",
                    "deleted_at": f"(CASE WHEN r.finished < now() - interval '{keep_days} days' "
                    "THEN r.finished + interval '%s days' ELSE NULL END)" % keep_days,
                    "deleted_reason": f"(CASE WHEN r.finished < now() - interval '{keep_days} days' "
                    "THEN 'retention' ELSE '' END)",
                },
                f"FROM {BackupRun._meta.db_table} r WHERE r.status IN ('succeeded', 'partial') {where}",
                cur,
            )
        print(f"  copies inserted in {time.monotonic() - t:.1f}s", flush=True)
        t = time.monotonic()
        tests_per_source = max(1, args.tests // n_src)
        spacing = max(1, per_source // tests_per_source)  # hours between a source's tests
        t_at = f"(now() - interval '10 minutes' - ((g / {n_src}) * {spacing} * interval '1 hour'))"
        passed = "(g % 20 <> 5)"
        insert_select(
            RestoreTest,
            {
                "source_id": f"{first_src} + g % {n_src}",
                "backup_run_id": f"(SELECT r.id FROM {BackupRun._meta.db_table} r WHERE r.source_id = "
                f"{first_src} + g % {n_src} AND r.status = 'succeeded' AND r.data_taken_at <= {t_at} "
                "ORDER BY r.data_taken_at DESC LIMIT 1)",
                "status": f"(CASE WHEN {passed} THEN 'succeeded' ELSE 'failed' END)",
                "queued": t_at,
                "started": t_at,
                "finished": f"{t_at} + (120 + g % 600) * interval '1 second'",
                "rto": f"(CASE WHEN {passed} THEN (120 + g % 600) * interval '1 second' END)",
                "throughput_bps": "20000000.0 / (120 + g % 600)",
                "data_at": f"{t_at} - interval '50 minutes'",
                "data_basis": "'backup'",
                "data_age": "interval '50 minutes'",
                "trigger": "'scheduled'",
                "error": f"(CASE WHEN {passed} THEN '' ELSE 'verification failed' END)",
            },
            f"FROM generate_series(0, {tests_per_source * n_src - 1}) AS g",
            cur,
        )
        print(f"  restore tests inserted in {time.monotonic() - t:.1f}s", flush=True)

    plans = []
    for i, system in enumerate(systems):
        plan = DrillPlan.objects.create(name=f"quarterly-{i}", time_budget=timedelta(hours=2))
        plan.systems.set([system])
        plans.append(plan)
    DrillPlan.objects.update(created=start)
    DrillRun.objects.bulk_create(
        DrillRun(
            plan=plans[k % len(plans)],
            plan_name=plans[k % len(plans)].name,
            status="ended",
            declared_at=now - timedelta(days=7 * k + 1),
            ended_at=now - timedelta(days=7 * k + 1) + timedelta(hours=1),
            verdict="passed" if k % 5 else "failed",
            rto_achieved=timedelta(minutes=50),
        )
        for k in range(200)
    )
    incidents = []
    for k in range(200):
        inc = Incident(
            title=f"bench incident {k}",
            severity=["sev1", "sev2", "sev3", "sev4"][k % 4],
            status="open" if k < 3 else "resolved",
            detected_at=now - timedelta(days=2 * k + 1),
            resolved_at=None if k < 3 else now - timedelta(days=2 * k + 1) + timedelta(hours=2),
            services_down="api" if k % 2 else "",
        )
        inc.save()
        incidents.append(inc)
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_model(Incident)
    FollowUp.objects.bulk_create(
        FollowUp(
            text=f"follow-up {k}",
            content_type=ct,
            object_id=incidents[k % len(incidents)].pk,
            due=(now - timedelta(days=k - 100)).date(),
            done=k % 3 == 0,
        )
        for k in range(300)
    )
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # what autovacuum does on a live portal


def measure(path, client, repeat, before=None):
    """p50, p95, query count and slowest queries of `repeat` renders; `before` runs untimed before each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(path)  # warm-up (template loading, connection)
    assert response.status_code == 200, (path, response.status_code)
    times, cpu = [], []
    for _ in range(repeat):
        if before:
            before()
        with CaptureQueriesContext(connection) as queries:
            t, c = time.perf_counter(), time.process_time()
            response = client.get(path)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
        assert response.status_code == 200
    # This process's CPU time (Python, not PostgreSQL's): steadier than wall time on a
    # machine shared with other work.
    measure.cpu_p50 = statistics.median(cpu)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    slow = sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:3]
    return statistics.median(times), p95, len(queries.captured_queries), slow


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--tests", type=int, default=50_000)
    parser.add_argument("--sources", type=int, default=200)
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--show-slow", action="store_true", help="print the slowest queries")
    parser.add_argument("--profile", action="store_true", help="cProfile one dashboard render")
    parser.add_argument("--append-results", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its name)")
    parser.add_argument(
        "--database", help="reuse a database kept by --keep (no fill; it is kept again)"
    )
    parser.add_argument(
        "--name", help="fill a new database of this name (instead of dr_bench_<random>)"
    )
    args = parser.parse_args()

    name = args.database or args.name or f"dr_bench_{uuid.uuid4().hex[:12]}"
    var = tempfile.mkdtemp(prefix="dr-bench-var-")
    os.environ.update(
        DATABASE_URL=PG + name,
        DR_VAR_DIR=var,
        DR_ENV="test",
        DJANGO_SECRET_KEY="bench-secret-key-0123456789-0123456789-0123456789",
        ALLOWED_HOSTS="testserver,localhost",
        DR_METRICS_TOKEN="bench-token",
        DJANGO_SETTINGS_MODULE="dr_portal.settings",
    )
    if not args.database:
        psql(f'CREATE DATABASE "{name}"')
    try:
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        t0 = time.monotonic()
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        print(f"migrated in {time.monotonic() - t0:.1f}s; filling {name} …", flush=True)
        t0 = time.monotonic()
        if not args.database:
            fill(args)
        fill_s = time.monotonic() - t0
        from backups.models import BackupCopy, BackupRun
        from recovery.models import RestoreTest

        counts = (
            BackupRun.objects.count(),
            BackupCopy.objects.count(),
            BackupCopy.objects.filter(deleted_at__isnull=True).count(),
            RestoreTest.objects.count(),
        )
        print(
            f"filled in {fill_s:.0f}s: {counts[0]:,} runs, {counts[1]:,} copies "
            f"({counts[2]:,} live), {counts[3]:,} restore tests",
            flush=True,
        )
        user, made = User.objects.get_or_create(username="bench-viewer")
        if made:
            user.groups.add(Group.objects.get(name="viewer"))
        client = Client()
        client.force_login(user)
        metrics_client = Client(HTTP_AUTHORIZATION="Bearer bench-token")
        if args.profile:
            import cProfile
            import pstats

            client.get("/")
            profiler = cProfile.Profile()
            profiler.enable()
            client.get("/")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(90)
        rows = []
        load_before = os.getloadavg()[0]
        from backups.models import Source as BenchSource

        first = BenchSource.objects.order_by("pk").first()
        middle = BackupRun.objects.order_by("pk").values_list("pk", flat=True)[counts[0] // 2]
        for label, path, c in (
            ("dashboard /", "/", client),
            ("htmx fragment", "/dashboard/fragment", client),
            ("/metrics", "/metrics", metrics_client),
            ("run history /backups/runs/", "/backups/runs/", client),
            ("run history, one source", f"/backups/runs/?source={first.pk}", client),
            (
                "run history, one source, failed",
                f"/backups/runs/?source={first.pk}&status=failed",
                client,
            ),
            ("run history, halfway back", f"/backups/runs/?before={middle}", client),
        ):
            load = os.getloadavg()[0]
            p50, p95, n_queries, slow = measure(path, c, args.repeat)
            rows.append((label, p50, p95, n_queries, measure.cpu_p50))
            print(
                f"{label:15s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {n_queries} queries"
                f"  CPU p50 {measure.cpu_p50:.1f} ms  (load {load:.1f} → {os.getloadavg()[0]:.1f})",
                flush=True,
            )
            if args.show_slow:
                for q in slow:
                    print(f"    {q['time']} s  {q['sql'][:300]}")
        # Without a worker the page recounts storage and 3-2-1 itself once the count is stale.
        from django.core.cache import cache

        from dashboard import board

        p50, p95, n_queries, _ = measure(
            "/", client, args.repeat, before=lambda: cache.delete(board.SLOW_FIGURES_KEY)
        )
        rows.append(
            (
                "dashboard / recounting storage and 3-2-1 (no worker)",
                p50,
                p95,
                n_queries,
                measure.cpu_p50,
            )
        )
        print(f"{rows[-1][0]} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {n_queries} queries")
        # The share of recovery.readiness.source_readiness (the verdicts, shared with dr_status).
        from django.test.utils import CaptureQueriesContext

        from backups.models import Source
        from recovery.readiness import source_readiness

        times, cpu = [], []
        for _ in range(args.repeat):
            with CaptureQueriesContext(connection) as queries:
                t, c = time.perf_counter(), time.process_time()
                source_readiness(list(Source.objects.select_related("system")))
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        rows.append(
            (
                "source_readiness() alone",
                statistics.median(times),
                p95,
                len(queries),
                statistics.median(cpu),
            )
        )
        print(f"{rows[-1][0]:15s} p50 {rows[-1][1]:7.1f} ms  p95 {p95:7.1f} ms", flush=True)
        # The portal's own share: the same pages with source_readiness answered from memory.
        import recovery.readiness as recovery_readiness

        real = recovery_readiness.source_readiness
        precomputed = real(list(Source.objects.select_related("system")))
        recovery_readiness.source_readiness = lambda sources, now=None: precomputed
        try:
            for label, path, c in (
                ("dashboard / without source_readiness", "/", client),
                ("htmx fragment without source_readiness", "/dashboard/fragment", client),
            ):
                p50, p95, n_queries, _ = measure(path, c, args.repeat)
                rows.append((label, p50, p95, n_queries, measure.cpu_p50))
                print(
                    f"{label} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {n_queries} queries", flush=True
                )
        finally:
            recovery_readiness.source_readiness = real
        connection.close()
    finally:
        from django.db import connections

        connections.close_all()
        if args.keep or args.database:  # a reused database stays for the next run
            print(
                f"kept {name}: drop it with  psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE {name}'"
            )
        else:
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped {name}")

    if args.append_results:
        cpu = platform.processor() or platform.machine()
        lines = [
            "",
            "## Dashboard latency",
            "",
            f"`bench/dashboard_latency.py --runs {args.runs} --tests {args.tests} --sources {args.sources} "
            f"--systems {args.systems} --repeat {args.repeat}` on {time.strftime('%Y-%m-%d')}, "
            f"PostgreSQL 15 on 127.0.0.1, {os.cpu_count()} cores ({cpu}), shared with other work, Python "
            f"{platform.python_version()}, DEBUG off, Django test client (no network), logged-in viewer.",
            "",
            f"Data: {counts[0]:,} backup runs, {counts[1]:,} copies ({counts[2]:,} live after retention), "
            f"{counts[3]:,} restore tests, {args.sources} sources in {args.systems} systems, 200 drill runs, "
            "200 incidents, 300 follow-ups.",
            "",
            f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
            "CPU = this process's CPU time per render (Python, not PostgreSQL's).",
            "",
            "| page | p50 ms | p95 ms | queries | CPU p50 ms |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {label} | {p50:.1f} | {p95:.1f} | {n} | {cpu:.1f} |"
                for label, p50, p95, n, cpu in rows
            ],
            "",
        ]
        with open(ROOT / "bench" / "RESULTS.md", "a") as handle:
            handle.write("\n".join(lines))


if __name__ == "__main__":
    main()
