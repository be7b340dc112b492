"""Accessibility, small screens and the kind-specific source form, in Chromium against gunicorn:

- axe-core (vendored in tests/support/axe, MPL-2.0) finds no serious or critical violation
  on the main pages, as a manager (who sees every form and button);
- at 390 px wide the dashboard, a run page, an incident and the forms scroll only down,
  never sideways; screenshots at 390 and 1440 go to test-artifacts/.
"""

from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from playwright.sync_api import expect

from incidents.models import Alert, IncidentLink, MaintenanceWindow
from tests.e2e.conftest import ARTIFACTS, log_in
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    BackupRunFactory,
    DestinationFactory,
    IncidentFactory,
    RestoreTestFactory,
    RunbookFactory,
    SourceFactory,
    SystemFactory,
    UserFactory,
)
from tests.failover.runs import run_inline
from tests.support import data

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[1] / "support" / "axe" / "axe.min.js"
BLOCKING = ("serious", "critical")


@pytest.fixture
def estate(tmp_path):
    """One of everything the main pages show, linked to each other."""
    system = SystemFactory(name="Tool Hub")
    source = SourceFactory(name="toolhub-db", system=system)
    destination = DestinationFactory(name="local", path=str(tmp_path / "backups"))
    job = BackupJobFactory(
        name="toolhub-db-hourly", source=source, destinations=[destination], schedule="0 * * * *"
    )
    run = BackupRunFactory(job=job, good=True, destination=destination, bytes_stored=12345)
    test = RestoreTestFactory(
        source=source,
        backup_run=run,
        status="failed",
        finished=timezone.now(),
        checks=[
            {"name": "rows", "sql": "SELECT count(*) FROM t", "expect": "not below 90% of previous",
             "observed": "40", "previous": "100", "outcome": "failed", "detail": "possible data loss"}
        ],
    )  # fmt: skip
    incident = IncidentFactory(title="Backups shrank", recent=True)
    for obj in (run, test):
        IncidentLink.objects.create(
            incident=incident,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=obj.pk,
        )
    runbook = RunbookFactory(
        system=system, steps=[{"name": "Restart", "kind": "command", "params": {"args": ["true"]}}]
    )
    failover = run_inline(runbook, mode="test")
    Alert.objects.create(key=f"backup:{job.pk}", kind="backup_failed", title="Backup failed")
    MaintenanceWindow.objects.create(
        system=system,
        starts=timezone.now(),
        ends=timezone.now() + timezone.timedelta(hours=1),
        reason="disk swap",
    )
    UserFactory(username="maria", role="manager")
    return {
        "source": source,
        "job": job,
        "run": run,
        "test": test,
        "incident": incident,
        "runbook": runbook,
        "failover": failover,
    }


def main_pages(e) -> list[str]:
    return [
        "/",
        "/backups/",
        "/backups/sources/",
        f"/backups/sources/{e['source'].pk}/",
        "/backups/sources/new/",
        "/backups/destinations/",
        "/backups/destinations/new/",
        f"/backups/jobs/{e['job'].pk}/",
        "/backups/runs/",
        e["run"].get_absolute_url(),
        "/recovery/",
        e["test"].get_absolute_url(),
        "/recovery/failover/",
        e["runbook"].get_absolute_url(),
        e["failover"].get_absolute_url(),
        "/drills/",
        "/drills/coverage/",
        "/incidents/",
        e["incident"].get_absolute_url(),
        "/incidents/new/",
        "/incidents/alerts/",
        "/incidents/maintenance/",
        "/incidents/contacts/",
        "/compliance/",
    ]


def axe_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " " + n.html.slice(0, 120)),
            }));
        }"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {', '.join(v['nodes'])}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.fixture
def axe_page(browser, servers):
    """A page whose CSP lets the test inject axe (the portal allows no inline script)."""
    portal, _ = servers
    context = browser.new_context(
        base_url=portal.base_url, viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def test_axe_finds_no_serious_or_critical_violation_on_the_main_pages(axe_page, estate):
    page = axe_page
    log_in(page, "maria", PASSWORD)
    problems = {}
    for path in main_pages(estate):
        response = page.goto(path)
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        found = axe_violations(page)
        if found:
            problems[path] = found
    assert not problems, "\n".join(f"{p}:\n  " + "\n  ".join(v) for p, v in problems.items())


def no_sideways_scroll(page) -> int:
    """How many CSS pixels the page is wider than the window (0: it fits)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


@pytest.mark.parametrize("width", [390, 1440])
def test_pages_fit_the_screen_without_sideways_scrolling(browser, servers, estate, width):
    portal, _ = servers
    context = browser.new_context(
        base_url=portal.base_url, viewport={"width": width, "height": 844}, is_mobile=width < 500
    )
    page = context.new_page()
    try:
        log_in(page, "maria", PASSWORD)
        pages = {
            "dashboard": "/",
            "backup-run": estate["run"].get_absolute_url(),
            "restore-test": estate["test"].get_absolute_url(),
            "failover-run": estate["failover"].get_absolute_url(),
            "incident": estate["incident"].get_absolute_url(),
            "source-form": "/backups/sources/new/",
            "incident-form": "/incidents/new/",
            "alerts": "/incidents/alerts/",
        }
        too_wide = {}
        ARTIFACTS.mkdir(exist_ok=True)
        for name, path in pages.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / f"layout-{width}--{name}.png"), full_page=True)
            extra = no_sideways_scroll(page)
            if extra > 0:
                too_wide[name] = extra
        assert not too_wide, f"wider than {width} px by: {too_wide}"
        # The navigation stays inside the bar: its last link is on screen.
        nav_links = page.locator("header.topbar nav a, header.topbar .who button")
        if nav_links.count():
            box = nav_links.last.bounding_box()
            assert box and box["x"] + box["width"] <= width + 1
    finally:
        context.close()


def test_source_form_shows_only_the_chosen_kinds_fields_and_tests_the_connection(page, tmp_path):
    """Choose SQLite: the PostgreSQL fields go, the path comes; "Test connection" answers
    on the page without saving or reloading it."""
    SystemFactory(name="Tool Hub")
    UserFactory(username="maria", role="manager")
    db = tmp_path / "tool_hub.db"
    data.small_sqlite(db)
    log_in(page, "maria", PASSWORD)
    page.goto("/backups/sources/new/")
    host = page.locator("[data-kinds] input[name=host]")
    path = page.locator("[data-kinds] input[name=path]")
    page.select_option("select[name=kind]", "postgresql")
    expect(host).to_be_visible()
    expect(path).to_be_hidden()
    page.select_option("select[name=kind]", "sqlite")
    expect(host).to_be_hidden()
    expect(path).to_be_visible()
    expect(page.locator("input[name=new_password]")).to_be_hidden()
    page.select_option("select[name=system]", label="Tool Hub")
    page.fill("input[name=name]", "toolhub-db")
    path.fill(str(db))
    page.evaluate("window.__notReloaded = true")
    page.click("button:has-text('Test connection')")
    expect(page.locator("#source-test-result")).to_contain_text("Connection test passed")
    assert page.evaluate("window.__notReloaded === true")
    assert "/backups/sources/new/" in page.url
    page.shot("source-form-tested")
