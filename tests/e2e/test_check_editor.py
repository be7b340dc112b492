"""The check editor in Chromium: 'Add a check' adds a row, 'Try on the latest restore'
answers on the page, Save stores the rows as the source's list of checks (issue 18)."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from backups.models import Source
from dr_portal.runs import RunStatus
from tests.e2e.conftest import log_in
from tests.factories import PASSWORD, RestoreTestFactory, SourceFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKFLOWS = {"name": "workflows", "sql": "SELECT count(*) FROM workflows", "expect": "> 0"}


def test_rows_are_added_tried_and_saved(page):
    UserFactory(username="maria", role="manager")
    source = SourceFactory(name="toolhub", checks=[WORKFLOWS])
    RestoreTestFactory(
        source=source,
        status=RunStatus.SUCCEEDED,
        finished=timezone.now(),
        checks=[{**WORKFLOWS, "observed": "42", "outcome": "passed", "detail": ""}],
    )
    log_in(page, "maria", PASSWORD)
    page.goto(f"/backups/sources/{source.pk}/edit/")
    rows = page.locator("tr[data-check-row]")
    expect(rows).to_have_count(3)  # the check and two blank rows
    page.click("button:has-text('Add a check')")
    expect(rows).to_have_count(4)
    expect(page.get_by_label("Check 4 name")).to_be_focused()
    page.get_by_label("Check 4 name").fill("users")
    page.get_by_label("Check 4 SQL").fill("SELECT count(*) FROM users")
    page.get_by_label("Check 4 expectation").fill(">= 1")
    page.evaluate("window.__notReloaded = true")
    page.click("button:has-text('Try on the latest restore')")
    result = page.locator("#check-try-result")
    expect(result).to_contain_text("ran it: passed, observed 42")
    expect(result).to_contain_text("users (expect >= 1): valid. Not run by a restore test yet.")
    expect(result).to_contain_text("Save first")
    assert page.evaluate("window.__notReloaded === true")
    page.shot("check-editor-tried")
    page.click("button:has-text('Save')")
    page.wait_for_url(lambda url: "/edit/" not in url)
    assert Source.objects.get(pk=source.pk).checks == [
        WORKFLOWS,
        {"name": "users", "sql": "SELECT count(*) FROM users", "expect": ">= 1"},
    ]
