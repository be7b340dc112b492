"""A run that ends while its page is open: the page shows the finished state (status,
actions, manifest) without a reload, and stops polling.

The runs are finished from the test, through the same model methods a worker uses, so the
moment of the end is known; the page is polled by htmx in Chromium against gunicorn.
"""

import pytest
from playwright.sync_api import expect

from backups.models import BackupRun
from dr_portal.runs import RunStatus
from recovery.failover.models import FailoverRun
from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, BackupJobFactory, RunbookFactory, SystemFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MANIFEST = {
    "compression": "zstd",
    "encrypted": True,
    "key_id": "k1",
    "restore_as": "sqlite",
    "tool_versions": {"sqlite3": "3.40"},
}


def mark_page(page):
    """A flag a reload would wipe: proves the page changed in place."""
    page.evaluate("window.__notReloaded = true")


def assert_not_reloaded(page):
    assert page.evaluate("window.__notReloaded === true")


def polls_after_the_end(page, path_part: str) -> int:
    """How many polling requests the page makes in 5 s once it shows the end (should be 0)."""
    seen = []
    page.on("request", lambda r: seen.append(r.url) if path_part in r.url else None)
    page.wait_for_timeout(5000)
    return len(seen)


def test_backup_run_page_shows_the_end_without_a_reload(page):
    UserFactory(username="otto", role="operator")
    job = BackupJobFactory(name="toolhub-db-hourly")
    run = job.create_run("manual")
    log_in(page, "otto", PASSWORD)
    page.goto(f"/backups/runs/{run.pk}/")
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.get_by_text("No manifest")).to_be_visible()
    mark_page(page)
    page.shot("running")

    assert run.claim()
    run.finish(RunStatus.SUCCEEDED, manifest=MANIFEST, artifact_key="toolhub/run-1.dra")

    expect(page.locator("#run-progress .badge")).to_have_text("succeeded", timeout=10_000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_text("No manifest")).to_have_count(0)
    expect(page.get_by_text("toolhub/run-1.dra")).to_be_visible()
    assert_not_reloaded(page)
    page.shot("finished")
    assert polls_after_the_end(page, f"/backups/runs/{run.pk}/progress/") == 0
    assert BackupRun.objects.get(pk=run.pk).status == "succeeded"


def test_failover_run_page_shows_the_end_without_a_reload(page):
    UserFactory(username="otto", role="operator")
    runbook = RunbookFactory(
        steps=[{"name": "wait", "kind": "wait", "params": {"seconds": 0}, "verification": True}],
        system=SystemFactory(name="tool-hub"),
        name="App failover",
    )
    run = FailoverRun.start(runbook, "test", queue=False)
    log_in(page, "otto", PASSWORD)
    page.goto(f"/recovery/failover/runs/{run.pk}/")
    expect(page.get_by_role("button", name="Cancel the run")).to_be_visible()
    mark_page(page)

    assert run.claim()
    run.step_runs.update(status="succeeded")
    run.finish(RunStatus.SUCCEEDED)

    expect(page.locator("#run-progress .badge").first).to_have_text("succeeded", timeout=10_000)
    expect(page.get_by_role("button", name="Cancel the run")).to_have_count(0)
    expect(page.get_by_role("link", name="Printable version")).to_be_visible()
    assert_not_reloaded(page)
    page.shot("finished")
    assert polls_after_the_end(page, f"/failover/runs/{run.pk}/progress") == 0
