"""drills.demo.load: the seed's quarterly drill for Tool Hub, idempotent, startable."""

import io

import pytest
from django.core.management import call_command

from drills.models import DrillPlan
from tests.factories import RunbookFactory

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_load_demo_twice_gives_one_startable_quarterly_plan():
    call_command("load_demo", stdout=io.StringIO())
    plan = DrillPlan.objects.get()
    assert plan.participants.filter(role="DBA").exists()  # already on the first load
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    plan = DrillPlan.objects.get()
    assert plan.name == "Quarterly DR drill"
    assert plan.schedule_text == "First Friday of each quarter, 10:00 UTC"
    assert [s.title for s in plan.scenarios.all()] == [
        "Simulate database failure",
        "Simulate node failure",
        "Simulate network failure",
        "Document results",
    ]
    db = plan.scenarios.get(kind="database_failure")
    assert [link.source_name for link in db.source_links.all()] == ["toolhub-db"]
    assert plan.participants.filter(role="DBA").exists()
    assert plan.problems() == []
    assert "demo: drill plan “Quarterly DR drill” (4 scenarios" in out.getvalue()


def test_demo_uses_the_tool_hub_runbooks_when_they_exist():
    from drills import demo

    demo.load(io.StringIO())
    plan = DrillPlan.objects.get()
    assert plan.scenarios.get(title="Simulate node failure").kind == "manual"
    system = plan.systems.get()
    runbook = RunbookFactory(
        steps=[{"name": "check", "kind": "wait", "params": {"seconds": 0}, "verification": True}],
        system=system,
        name="Fail over the app node",
    )
    demo.load(io.StringIO())
    node = plan.scenarios.get(title="Simulate node failure")
    assert node.kind == "failover" and node.runbook == runbook
    assert plan.scenarios.count() == 4
