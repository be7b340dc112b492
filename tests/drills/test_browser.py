"""The live drill page in a real browser (Chromium via Playwright): ticking a step through the
form, and another person's tick appearing through htmx polling without a reload."""

import pytest

from tests.factories import PASSWORD, UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.slow,
]


@pytest.fixture
def browser_page(browser):
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_live_page_ticks_and_follows_other_people(live_server, browser_page, system, contacts):
    from drills import services
    from tests.drills.conftest import add_scenario, make_plan

    plan = make_plan(systems=[system], participants=contacts)
    add_scenario(plan, "manual", "Simulate node failure", checklist="Stop the app\nFail over")
    add_scenario(plan, "manual", "Document results", checklist="Write it down")
    otto = UserFactory(username="otto", role="operator")
    other = UserFactory(username="mona", role="operator")
    drill = services.start_drill(plan, otto)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/drills/runs/{drill.pk}/")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_url(f"**/drills/runs/{drill.pk}/")
    assert page.locator("text=T+").first.is_visible()

    # Tick the first step through the form, with a note.
    row = page.locator("tr", has_text="Stop the app")
    row.locator("input[name=note]").fill("app stopped at the load balancer")
    row.locator("button:has-text('Tick')").click()
    page.wait_for_load_state("load")
    page.get_by_role("cell", name="app stopped at the load balancer", exact=True).wait_for()

    # Someone else ticks the second step; the page shows it without a reload (htmx polling).
    item = drill.scenario_runs.get(position=1).items.get(position=2)
    services.tick_item(item, other, note="failed over")
    page.locator("text=Scenario 1 “Simulate node failure” passed").wait_for(timeout=10_000)
    page.locator("h2", has_text="2. Document results").locator("text=running").wait_for()
    assert page.locator("td", has_text="mona").count() >= 1
