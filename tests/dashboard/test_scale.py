"""The dashboard, /metrics and the run history cost the same with 10 runs as with 1,000.

History is written with bulk_create (rows, no engine): what matters here is how many rows
exist, not how they were made. bench/dashboard_latency.py measures the same at 10 M runs.
"""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard import board
from dr_portal.runs import RunStatus
from tests.dashboard import readiness_data as data

TOKEN = "scale-test-token"


def grow(sources, dests, runs_per_source, now):
    """`runs_per_source` more hourly runs per source (every 50th failed), each good one with a
    copy per destination, and a restore test per 10 runs."""
    from backups.models import BackupCopy, BackupRun
    from recovery.models import RestoreTest

    oldest = BackupRun.objects.order_by("queued").values_list("queued", flat=True).first()
    start = (oldest or now) - timedelta(hours=1)
    runs = []
    for src in sources:
        for k in range(runs_per_source):
            at = start - timedelta(hours=k)
            failed = k % 50 == 7
            runs.append(
                BackupRun(
                    source=src,
                    source_name=src.name,
                    job_name=f"{src.name}-job",
                    status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                    queued=at,
                    started=at,
                    finished=at + timedelta(minutes=2),
                    data_taken_at=None if failed else at,
                    bytes_stored=1000,
                )
            )
    BackupRun.objects.bulk_create(runs, batch_size=500)
    made = BackupRun.objects.filter(queued__lte=start, status=RunStatus.SUCCEEDED)
    BackupCopy.objects.bulk_create(
        [
            BackupCopy(run=run, destination=dest, ok=True, location="x", created=run.finished)
            for run in made
            for dest in dests
        ],
        batch_size=500,
    )
    RestoreTest.objects.bulk_create(
        [
            RestoreTest(
                source=run.source,
                backup_run=run,
                status=RunStatus.SUCCEEDED,
                queued=run.finished,
                started=run.finished,
                finished=run.finished + timedelta(minutes=5),
                rto=timedelta(minutes=5),
                data_at=run.data_taken_at,
            )
            for run in made.select_related("source")[::10]
        ],
        batch_size=500,
    )


def count(client, path, **headers) -> int:
    cache.delete(board.SLOW_FIGURES_KEY)  # the worst case: the page recounts 3-2-1 itself
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, **headers)
    assert response.status_code == 200, path
    return len(captured.captured_queries)


@pytest.fixture
def world(db, tmp_path, settings):
    settings.DR_METRICS_TOKEN = TOKEN
    settings.DR_METRICS_ALLOW = []
    dests = data.destinations(tmp_path)[:2]
    sources = []
    for i in range(3):
        src = data.source(f"db-{i}")
        data.job(src, dests)
        sources.append(src)
    return sources, dests


def pages(sources):
    from backups.models import BackupRun

    first = sources[0]
    middle = BackupRun.objects.order_by("-queued", "-pk").values_list("pk", flat=True)[5]
    return {
        "/": {},
        "/dashboard/fragment": {},
        "/metrics": {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"},
        reverse("backups:run_list"): {},
        f"{reverse('backups:run_list')}?source={first.pk}": {},
        f"{reverse('backups:run_list')}?source={first.pk}&status=failed": {},
        f"{reverse('backups:run_list')}?status=failed_or_partial&since=30d": {},
        f"{reverse('backups:run_list')}?before={middle}": {},
        f"{reverse('backups:run_list')}?after={middle}": {},
    }


@pytest.mark.slow  # ~3 s idle: 1,000 runs, 2,000 copies, 9 pages rendered twice
def test_query_counts_do_not_grow_from_10_to_1000_runs(world, viewer):
    from backups.models import BackupRun

    sources, dests = world
    now = timezone.now()
    client = Client()
    client.force_login(viewer)
    grow(sources, dests, 4, now)  # 12 runs
    client.get("/")  # session, content types, templates
    small = {path: count(client, path, **h) for path, h in pages(sources).items()}
    grow(sources, dests, 330, now)
    assert BackupRun.objects.count() == 3 * 334 > 1000
    large = {path: count(client, path, **h) for path, h in pages(sources).items()}
    assert large == small


def plan(sql: str) -> str:
    """The plan PostgreSQL picks when it cannot fall back on reading and sorting small tables."""
    with connection.cursor() as cursor:
        # Statistics as autovacuum keeps them: without, a table just filled looks empty.
        cursor.execute("ANALYZE backups_backuprun, backups_backupcopy")
        # Tiny tables: judge which index the query can use, not what is cheapest for 15 rows.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_lost_copy_lookup_of_every_page_uses_its_partial_index(world):
    """The destination banner runs on every page: its lost-copy check must not read every copy."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    from dashboard.destination_health import failing_destinations

    sources, dests = world
    grow(sources, dests, 5, timezone.now())
    with CaptureQueriesContext(connection) as captured:
        failing_destinations()
    (sql,) = [q["sql"] for q in captured.captured_queries]
    assert "backupcopy_lost_idx" in plan(sql)


def test_run_history_of_one_source_reads_that_source_s_runs_only(world, viewer_client):
    """Not the whole history newest first until 50 of the source's runs turn up."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    sources, dests = world
    others = [data.source(f"other-{i}") for i in range(30)]  # one source: a few of the runs
    grow([*sources, *others], dests, 5, timezone.now())
    with CaptureQueriesContext(connection) as captured:
        viewer_client.get(f"{reverse('backups:run_list')}?source={sources[0].pk}")
    (sql,) = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('SELECT "backups_backuprun"."id"') and "ORDER BY" in q["sql"]
    ]
    assert "backuprun_src_queued_idx" in plan(sql)


@pytest.mark.parametrize("direction, bound", [("before", "queued <="), ("after", "queued >=")])
def test_run_history_pages_start_their_index_scan_at_the_anchor(
    world, viewer_client, direction, bound
):
    """Keyset pages: a page halfway back starts at its anchor, not at the newest run."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    from backups.models import BackupRun

    sources, dests = world
    grow(sources, dests, 5, timezone.now())
    anchor = BackupRun.objects.order_by("-queued", "-pk").values_list("pk", flat=True)[7]
    with CaptureQueriesContext(connection) as captured:
        viewer_client.get(f"{reverse('backups:run_list')}?{direction}={anchor}")
    (sql,) = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith('SELECT "backups_backuprun"."id"') and "ORDER BY" in q["sql"]
    ]
    assert f"Index Cond: ({bound}" in plan(sql)
