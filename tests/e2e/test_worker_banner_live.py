"""A worker that stops while a page is open: the banner appears on that page by itself.

Its own portal and cluster (not the module-wide ones: this test stops its worker), with
the window shortened by settings (DR_WORKER_WINDOW_S, DR_BANNER_POLL_S) so the test takes
seconds; in production the window is 60 s and pages re-check every 15 s.
"""

import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, BackupJobFactory, UserFactory
from tests.support.cluster import running_cluster, stop
from tests.support.portal import running_portal

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WINDOW_S, POLL_S = 4, 1
SHORT = {"DR_WORKER_WINDOW_S": WINDOW_S, "DR_BANNER_POLL_S": POLL_S}


def test_worker_stopped_banner_appears_on_the_open_page(browser):
    UserFactory(username="vera", role="viewer")
    job = BackupJobFactory(name="toolhub-db-hourly")
    with running_portal(workers=1, **SHORT) as portal, running_cluster(workers=1) as cluster:
        context = browser.new_context(base_url=portal.base_url)
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            log_in(page, "vera", PASSWORD)
            # The cluster beats: the banner goes (or never shows) once the page re-checks.
            expect(page.locator("#worker-warning")).to_have_count(0, timeout=30_000)
            page.goto("/backups/")
            expect(page.locator("#health-banners")).to_be_attached()
            expect(page.locator("#worker-warning")).to_have_count(0)
            page.evaluate("window.__notReloaded = true")

            stop(cluster)
            job.create_run("manual")  # queued, with no worker to take it
            stopped = time.monotonic()
            banner = page.locator("#worker-warning")
            expect(banner).to_be_visible(timeout=60_000)
            took = time.monotonic() - stopped
            expect(banner).to_contain_text("No worker is running")
            expect(banner).to_contain_text("1 backup run")
            assert page.evaluate("window.__notReloaded === true")  # no reload: the page polled
            # Stats expire 3 s after the last beat, then the window, then the next poll.
            assert took < 3 + WINDOW_S + POLL_S + 5, f"banner after {took:.1f} s"
        finally:
            context.close()
