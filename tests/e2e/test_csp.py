"""The Content-Security-Policy in a real browser: no page logs a violation, and what used to
be inline script (confirm dialogs, the status filter, htmx polling) still works.
"""

import re

import pytest
from playwright.sync_api import expect

from backups.models import BackupJob
from tests.e2e.conftest import log_in
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    DestinationFactory,
    DrillPlanFactory,
    IncidentFactory,
    UserFactory,
)
from tests.support import data

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RUN_TIMEOUT = 90_000  # ms: a backup through the queue on a busy machine
MAIN_PAGES = [
    "/",
    "/backups/",
    "/backups/runs/",
    "/recovery/",
    "/drills/",
    "/incidents/",
    "/compliance/",
    "/health/destinations",
]


@pytest.fixture
def violations(page):
    """Console lines about the policy, and script errors, from every page this test opens."""
    seen = []
    page.on(
        "console",
        lambda msg: seen.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.on("pageerror", lambda exc: seen.append(f"page error: {exc}"))
    return seen


def test_main_pages_log_no_policy_violation_and_still_work(page, violations, tmp_path):
    source = data.sqlite_source("toolhub-db", data.small_sqlite(tmp_path / "tool_hub.db"))
    job = BackupJobFactory(
        name="toolhub-db-hourly",
        source=source,
        destinations=[DestinationFactory(name="local", path=str(tmp_path / "backups"))],
    )
    IncidentFactory(title="Disk alarm on db-1")
    DrillPlanFactory(name="Quarterly restore drill")
    UserFactory(username="mona", role="manager")

    log_in(page, "mona", PASSWORD)
    for path in MAIN_PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
    page.shot("pages-visited")

    # htmx: the run page polls its progress until the run is done, without a reload.
    page.goto(f"/backups/jobs/{job.pk}/")
    page.click("button:has-text('Run now')")
    page.wait_for_url(re.compile(r"/backups/runs/\d+/$"))
    expect(page.locator("#run-progress .badge").first).to_have_text(
        "succeeded", timeout=RUN_TIMEOUT
    )
    page.shot("run-polled-to-succeeded")

    # A confirm dialog from static JS: dismissed, nothing is deleted.
    page.goto(f"/backups/jobs/{job.pk}/")
    dialogs = []
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("button:has-text('Delete')")
    page.wait_for_timeout(300)
    assert dialogs and "Delete job toolhub-db-hourly?" in dialogs[0]
    assert BackupJob.objects.filter(pk=job.pk).exists()

    # The restore question is built from the form.
    target = tmp_path / "restored.db"
    page.goto(f"/recovery/sources/{source.pk}/restore/")
    page.fill("input[name=target]", str(target))
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click("button:has-text('Restore')")
    page.wait_for_timeout(300)
    assert len(dialogs) == 2 and f"Restore toolhub-db to {target}?" == dialogs[1]
    page.shot("restore-dismissed")

    # The incidents filter submits itself when changed.
    page.goto("/incidents/")
    page.select_option("select[name=status]", "active")
    page.wait_for_url(re.compile(r"status=active"))

    assert violations == [], "\n".join(violations)


def test_an_inline_script_would_be_reported(page, violations):
    """The listener above is not vacuous: an injected inline script is refused and logged."""
    UserFactory(username="vera", role="viewer")
    log_in(page, "vera", PASSWORD)
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__ran = true"; document.body.appendChild(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("() => window.__ran === undefined")
    assert any("Content Security Policy" in v for v in violations), violations
