"""Browser tests: Debian's Chromium driven by Playwright against gunicorn and a real cluster.

gunicorn and the cluster are started once per module on the file test database; every test
is transactional (its rows are flushed after it), so the servers see what the test wrote.
Each path saves screenshots into test-artifacts/ (gitignored), and one more when it fails.
"""

import re
from pathlib import Path

import pytest

from tests.marks import needs
from tests.support.cluster import ROOT, running_cluster
from tests.support.portal import running_portal

ARTIFACTS = ROOT / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_report = report
    return report


@pytest.fixture(scope="module")
@needs("slow")
def servers(django_db_setup, django_db_blocker):
    """gunicorn (2 workers) and a django-q2 cluster (2 workers) on the test database."""
    with django_db_blocker.unblock():
        with running_cluster(workers=2) as cluster, running_portal(workers=2) as portal:
            yield portal, cluster


class Shots:
    def __init__(self, page, test_name):
        self.page = page
        self.prefix = re.sub(r"[^\w-]+", "_", test_name)
        self.taken: list[Path] = []
        ARTIFACTS.mkdir(exist_ok=True)

    def __call__(self, step: str, **options) -> Path:
        path = ARTIFACTS / f"{self.prefix}--{len(self.taken) + 1:02d}-{step}.png"
        self.page.screenshot(path=str(path), full_page=True, **options)
        self.taken.append(path)
        return path


@pytest.fixture
def page(browser, servers, request):
    """A fresh browser context (no cookies) on the portal; screenshots via page.shot(step)."""
    portal, _ = servers
    context = browser.new_context(
        base_url=portal.base_url, viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.shot = Shots(page, request.node.name)
    try:
        yield page
    finally:
        report = getattr(request.node, "call_report", None)
        if report is not None and report.failed:
            try:
                page.shot("FAILED")
            except Exception:  # noqa: S110 - a dead page must not hide the real failure
                pass
        context.close()


def log_in(page, username, password):
    """Through the login form, as a person would."""
    page.goto("/")
    assert "/accounts/login/" in page.url  # login is required
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Log in')")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    assert page.locator(".who").inner_text().startswith(username)
