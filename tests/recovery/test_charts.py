"""The source page's RPO-over-time chart: real backup rows, their target, bounded queries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recovery.models import RPOTarget
from tests.factories import BackupRunFactory, DestinationFactory, SourceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "app.db"
    path.write_bytes(b"")
    return SourceFactory(
        system__name="tool-hub",
        name="toolhub-db",
        kind="sqlite",
        path=str(path),
        data_class="critical",
    )


def rpo_section(html: str) -> str:
    start = html.index("<h2>RPO over time</h2>")
    return html[start : html.index("<h2>Restore duration</h2>", start)]


def test_rpo_chart_draws_each_gap_and_now_against_the_target(viewer_client, source, tmp_path):
    RPOTarget.objects.update_or_create(
        data_class="critical", defaults={"target": timedelta(hours=2)}
    )
    destination = DestinationFactory(name="local", kind="local", path=str(tmp_path))
    now = timezone.now()
    # Five good backups an hour apart but for one 3 h gap: four gaps (the first backup has
    # no predecessor), then the RPO now (1 h).
    taken = [now - timedelta(hours=h) for h in (7, 6, 5, 2, 1)]
    for at in taken:
        BackupRunFactory(
            good=True,
            source=source,
            destination=destination,
            data_taken_at=at,
            finished=at,
            bytes_stored=10,
            live_copy__bytes_stored=10,
        )
    # Not counted: a failed run and a backup that cannot be restored.
    BackupRunFactory(source=source, status="failed", data_taken_at=now - timedelta(hours=3))
    BackupRunFactory(
        source=source,
        status="succeeded",
        restorable=False,
        data_taken_at=now - timedelta(hours=4),
    )

    response = viewer_client.get(reverse("recovery:source_detail", args=[source.pk]))
    assert response.status_code == 200
    section = rpo_section(response.content.decode())
    assert "<svg" in section
    assert "RPO target 2h" in section
    # 4 gaps + the RPO now.
    assert section.count("<circle") == 5
    # Only the 3 h gap is over the 2 h target: drawn in the "bad" colour, and labelled.
    assert section.count('fill="#c62828"><title>') == 1
    assert "RPO: 3h" in section


def test_source_without_backups_shows_no_data(viewer_client, source):
    response = viewer_client.get(reverse("recovery:source_detail", args=[source.pk]))
    section = rpo_section(response.content.decode())
    assert "No data yet." in section
    assert "<circle" not in section


def test_rpo_chart_query_count_does_not_grow_with_backups(
    viewer_client, source, tmp_path, django_assert_max_num_queries
):
    destination = DestinationFactory(name="local", kind="local", path=str(tmp_path))
    now = timezone.now()

    def add(n, offset):
        for i in range(n):
            at = now - timedelta(hours=offset + i)
            BackupRunFactory(good=True, source=source, destination=destination, data_taken_at=at)

    url = reverse("recovery:source_detail", args=[source.pk])
    add(2, 0)
    viewer_client.get(url)  # warm the session and caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        viewer_client.get(url)
    few = len(few)  # now: the next request resets the connection's query log
    add(30, 2)
    viewer_client.get(url)  # the readiness cache filled again after the writes, as for `few`
    with django_assert_max_num_queries(few):
        response = viewer_client.get(url)
    assert rpo_section(response.content.decode()).count("<circle") == 32
