"""A dead worker is visible on every page: for how long, and what waits for one."""

import time

import pytest
from django.core.cache import cache

from backups.models import BackupRun
from dr_portal.lib.queue import WORKER_SEEN_KEY
from tests.factories import BackupJobFactory, BackupRunFactory


def _dashboard(client) -> str:
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_banner_names_how_long_and_what_waits(viewer_client):
    job = BackupJobFactory()
    BackupRunFactory(job=job, source=job.source, status="queued")
    BackupRunFactory(job=job, source=job.source, status="queued")
    cache.set(WORKER_SEEN_KEY, time.time() - 200, None)
    body = _dashboard(viewer_client)
    assert 'id="worker-warning"' in body and "No worker is running" in body
    assert "3m" in body  # seen 200 s ago
    assert "2 backup runs" in body
    assert BackupRun.objects.filter(status="queued").count() == 2


def test_banner_when_no_worker_was_ever_seen(viewer_client):
    cache.delete(WORKER_SEEN_KEY)
    assert "None has been seen since the portal started" in _dashboard(viewer_client)


@pytest.mark.parametrize(
    "path", ["/backups/", "/recovery/", "/drills/", "/incidents/", "/backups/destinations/"]
)
def test_banner_on_every_page_not_only_the_dashboard(viewer_client, path):
    job = BackupJobFactory()
    BackupRunFactory(job=job, source=job.source, status="queued")
    cache.set(WORKER_SEEN_KEY, time.time() - 120, None)
    response = viewer_client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="worker-warning"' in body and "1 backup run" in body


def test_banner_on_a_run_page(viewer_client):
    job = BackupJobFactory()
    run = BackupRunFactory(job=job, source=job.source, status="queued")
    cache.delete(WORKER_SEEN_KEY)
    body = viewer_client.get(f"/backups/runs/{run.pk}/").content.decode()
    assert body.count('id="worker-warning"') == 1


def test_no_banner_before_sign_in(client, db):
    cache.delete(WORKER_SEEN_KEY)
    body = client.get("/accounts/login/").content.decode()
    assert "worker-warning" not in body


def test_no_banner_while_a_worker_beats(viewer_client):
    cache.set(WORKER_SEEN_KEY, time.time() - 5, None)
    assert 'id="worker-warning"' not in _dashboard(viewer_client)
    assert 'id="worker-warning"' not in viewer_client.get("/backups/").content.decode()


def test_pages_re_read_the_banners_and_the_fragment_has_them(viewer_client, settings):
    settings.DR_BANNER_POLL_S = 7
    cache.set(WORKER_SEEN_KEY, time.time() - 120, None)
    page = viewer_client.get("/backups/").content.decode()
    assert 'hx-get="/banners" hx-trigger="every 7s"' in page
    fragment = viewer_client.get("/banners").content.decode()
    assert fragment.startswith('<div id="health-banners"') and 'id="worker-warning"' in fragment
    cache.set(WORKER_SEEN_KEY, time.time(), None)
    assert 'id="worker-warning"' not in viewer_client.get("/banners").content.decode()


def test_the_window_is_a_setting(viewer_client, settings):
    cache.set(WORKER_SEEN_KEY, time.time() - 30, None)
    assert 'id="worker-warning"' not in _dashboard(viewer_client)  # 30 s < 60 s
    settings.DR_WORKER_WINDOW_S = 20
    assert 'id="worker-warning"' in _dashboard(viewer_client)
