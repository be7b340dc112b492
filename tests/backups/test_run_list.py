"""The backup run history: every run, filtered and paginated, bad filters refused with a message."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from backups.models import BackupRun
from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory, SourceFactory, SystemFactory

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def history(db):
    system = SystemFactory(name="tool-hub")
    a = SourceFactory(system=system, name="db-a", kind="sqlite", path="/tmp/a.db")
    b = SourceFactory(system=system, name="db-b", kind="sqlite", path="/tmp/b.db")
    job_a = BackupJobFactory(name="a-hourly", source=a)
    job_b = BackupJobFactory(name="b-daily", source=b)
    runs = []
    for hours in range(120):  # five days, hourly, alternating sources; every 10th failed
        job = job_a if hours % 2 == 0 else job_b
        status = RunStatus.FAILED if hours % 10 == 3 else RunStatus.SUCCEEDED
        at = T0 - timedelta(hours=hours)
        runs.append(
            BackupRun(
                job=job,
                source=job.source,
                job_name=job.name,
                source_name=job.source.name,
                status=status,
                queued=at,
                started=at,
                finished=at + timedelta(minutes=2),
                error="disk full" if status == RunStatus.FAILED else "",
            )
        )
    BackupRun.objects.bulk_create(runs)
    return {"a": a, "b": b, "job_a": job_a}


def ids(html):
    import re

    return [int(n) for n in re.findall(r'href="/backups/runs/(\d+)/"', html)]


def older_newer(html):
    import re

    older = re.search(r'href="\?([^"]*)before=(\d+)">older', html)
    newer = re.search(r'href="\?([^"]*)after=(\d+)">← newer', html)
    return (older and older.groups()), (newer and newer.groups())


def test_newest_first_fifty_a_page_older_and_back(viewer_client, history):
    newest = list(BackupRun.objects.order_by("-queued", "-pk").values_list("pk", flat=True))
    with time_machine.travel(T0, tick=False):
        first = viewer_client.get("/backups/runs/").content.decode()
        assert ids(first) == newest[:50]
        (_, before), newer = older_newer(first)
        assert int(before) == newest[49] and newer is None
        second = viewer_client.get("/backups/runs/", {"before": before}).content.decode()
        assert ids(second) == newest[50:100]
        (_, before), (_, after) = older_newer(second)
        third = viewer_client.get("/backups/runs/", {"before": before}).content.decode()
        assert ids(third) == newest[100:]
        older, (_, after_third) = older_newer(third)
        assert older is None
        back = viewer_client.get("/backups/runs/", {"after": after_third}).content.decode()
        assert ids(back) == newest[50:100]
        first_again = viewer_client.get("/backups/runs/", {"after": after}).content.decode()
        assert ids(first_again) == newest[:50] and older_newer(first_again)[1] is None


def test_filters_combine_and_pages_keep_them(viewer_client, history):
    with time_machine.travel(T0, tick=False):
        html = viewer_client.get(
            "/backups/runs/", {"status": "failed_or_partial", "since": "24h"}
        ).content.decode()
        by_source = viewer_client.get(
            "/backups/runs/", {"source": history["b"].pk, "status": "succeeded"}
        ).content.decode()
        succeeded = viewer_client.get("/backups/runs/", {"status": "succeeded"}).content.decode()
    expected = BackupRun.objects.filter(
        status=RunStatus.FAILED, queued__gte=T0 - timedelta(hours=24)
    ).order_by("-queued")
    assert ids(html) == [r.pk for r in expected] and len(expected) == 3
    assert "disk full" in html
    b_ok = BackupRun.objects.filter(source=history["b"], status=RunStatus.SUCCEEDED)
    assert sorted(ids(by_source)) == sorted(r.pk for r in b_ok) and b_ok.count() == 48
    (query, _), _ = older_newer(succeeded)
    assert query == "status=succeeded&amp;"


def test_bad_filter_is_refused_with_a_message(viewer_client, history):
    response = viewer_client.get("/backups/runs/", {"status": "exploded", "since": "1y"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice. exploded is not one of the available choices." in html
    assert "1y is not one of the available choices" in html
    assert ids(html) == [] and "No run matches these filters." in html
    page = viewer_client.get("/backups/runs/", {"before": "x"})
    assert page.status_code == 400 and "Enter a whole number." in page.content.decode()


def test_dashboard_links_to_the_failed_runs(viewer_client, history):
    with time_machine.travel(T0, tick=False):
        html = viewer_client.get("/").content.decode()
    assert 'href="/backups/runs/?status=failed_or_partial&amp;since=24h"' in html


def test_runs_queued_at_the_same_moment_are_each_shown_once(viewer_client, db):
    system = SystemFactory(name="s")
    source = SourceFactory(system=system, name="db", kind="sqlite", path="/tmp/x.db")
    job = BackupJobFactory(name="j", source=source)
    BackupRun.objects.bulk_create(
        BackupRun(job=job, source=source, job_name="j", queued=T0) for _ in range(75)
    )
    first = viewer_client.get("/backups/runs/").content.decode()
    (_, before), _ = older_newer(first)
    second = viewer_client.get("/backups/runs/", {"before": before}).content.decode()
    shown = ids(first) + ids(second)
    assert sorted(shown) == sorted(BackupRun.objects.values_list("pk", flat=True))
    assert len(shown) == len(set(shown)) == 75
