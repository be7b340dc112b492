"""Every drills view as anonymous, viewer, operator and manager, plus the wrong method."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import RunbookFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "operator", "manager"]


def _targets(drill):
    plan = drill.plan
    scenario = plan.scenarios.order_by("order").first()
    srun = drill.scenario_runs.order_by("position").first()
    item = srun.items.order_by("position").first()
    ack_srun = drill.scenario_runs.order_by("position").last()
    return {
        # (url, method, minimum role)
        "index": (reverse("drills:index"), "get", "viewer"),
        "coverage": (reverse("drills:coverage"), "get", "viewer"),
        "plan": (reverse("drills:plan", args=[plan.pk]), "get", "viewer"),
        "run": (reverse("drills:run", args=[drill.pk]), "get", "viewer"),
        "run_live": (reverse("drills:run_live", args=[drill.pk]), "get", "viewer"),
        "report": (reverse("drills:report", args=[drill.pk]), "get", "viewer"),
        "plan_new": (reverse("drills:plan_new"), "get", "manager"),
        "plan_edit": (reverse("drills:plan_edit", args=[plan.pk]), "get", "manager"),
        "scenario_new": (reverse("drills:scenario_new", args=[plan.pk]), "get", "manager"),
        "scenario_edit": (
            reverse("drills:scenario_edit", args=[plan.pk, scenario.pk]),
            "get",
            "manager",
        ),
        "scenario_move": (
            reverse("drills:scenario_move", args=[plan.pk, scenario.pk]),
            "post",
            "manager",
        ),
        "plan_start": (reverse("drills:plan_start", args=[plan.pk]), "post", "operator"),
        "item_tick": (reverse("drills:item_tick", args=[drill.pk, item.pk]), "post", "operator"),
        "scenario_complete": (
            reverse("drills:scenario_complete", args=[drill.pk, ack_srun.pk]),
            "post",
            "operator",
        ),
        "finding_add": (reverse("drills:finding_add", args=[drill.pk]), "post", "operator"),
        "followup_add": (reverse("drills:followup_add", args=[drill.pk]), "post", "operator"),
        "run_cleanup": (reverse("drills:run_cleanup", args=[drill.pk]), "post", "operator"),
        "run_end": (reverse("drills:run_end", args=[drill.pk]), "post", "operator"),
        "run_abort": (reverse("drills:run_abort", args=[drill.pk]), "post", "operator"),
        "ack_tick": (
            reverse("drills:ack_tick", args=[drill.pk, _an_ack(ack_srun).pk]),
            "post",
            "operator",
        ),
        "plan_delete": (reverse("drills:plan_delete", args=[plan.pk]), "post", "manager"),
        "scenario_delete": (
            reverse("drills:scenario_delete", args=[plan.pk, scenario.pk]),
            "post",
            "manager",
        ),
        "pdf": (reverse("drills:pdf", args=[drill.pk]), "get", "viewer"),
    }


def _an_ack(srun):
    from drills.models import CalloutAck

    ack = srun.acks.first()
    if ack is None:  # the call-out has not started yet: the row exists once it does
        contact = srun.drill.plan.participants.first()
        ack = CalloutAck.objects.create(
            scenario_run=srun, contact=contact, contact_name=contact.name
        )
    return ack


ALL = [
    "index", "coverage", "plan", "run", "run_live", "report", "plan_new", "plan_edit",
    "scenario_new", "scenario_edit", "scenario_move", "plan_start", "item_tick",
    "scenario_complete", "finding_add", "followup_add", "run_cleanup", "run_end", "run_abort",
    "ack_tick", "plan_delete", "scenario_delete",
]  # fmt: skip


def _client(role):
    client = Client()
    if role:
        client.force_login(UserFactory(username=f"u-{role}", role=role))
    return client


@pytest.mark.parametrize("name", [*ALL, "pdf"])
def test_anonymous_is_sent_to_login(running_drill, name):
    url, method, _ = _targets(running_drill)[name]
    response = getattr(Client(), method)(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ALL)
def test_each_role_gets_exactly_its_views(running_drill, name, role):
    url, method, needed = _targets(running_drill)[name]
    response = getattr(_client(role), method)(url)
    if ROLES.index(role) < ROLES.index(needed):
        assert response.status_code == 403, (name, role)
    else:
        assert response.status_code in (200, 302), (name, role, response.status_code)


@pytest.mark.parametrize("name", ["index", "run", "report", "pdf"])
def test_user_without_a_role_is_refused(running_drill, name):
    client = Client()
    client.force_login(UserFactory(username="nobody"))
    url, _, _ = _targets(running_drill)[name]
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("name", ["run", "coverage", "plan"])
def test_pages_query_counts_are_pinned(
    running_drill, viewer_client, django_assert_max_num_queries, name
):
    url, _, _ = _targets(running_drill)[name]
    with django_assert_max_num_queries(40):
        assert viewer_client.get(url).status_code == 200


def test_plan_with_runs_is_not_deleted(running_drill, manager_client):
    from drills.models import DrillPlan

    response = manager_client.post(
        reverse("drills:plan_delete", args=[running_drill.plan_id]), follow=True
    )
    assert "has drill runs; their reports keep it" in response.content.decode()
    assert DrillPlan.objects.filter(pk=running_drill.plan_id).exists()


def test_admin_pages_render_for_every_drills_model(running_drill, superuser_client):
    from django.apps import apps

    for model in apps.get_app_config("drills").get_models():
        name = model._meta.model_name
        assert superuser_client.get(f"/admin/drills/{name}/").status_code == 200, name
        assert superuser_client.get(f"/admin/drills/{name}/add/").status_code == 200, name
    plan_id = running_drill.plan_id
    assert superuser_client.get(f"/admin/drills/drillplan/{plan_id}/change/").status_code == 200
    drill_url = f"/admin/drills/drillrun/{running_drill.pk}/change/"
    assert superuser_client.get(drill_url).status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        "scenario_move", "plan_start", "item_tick", "scenario_complete", "finding_add",
        "followup_add", "run_cleanup", "run_end", "run_abort",
    ],
)  # fmt: skip
def test_get_on_an_action_redirects_and_changes_nothing(running_drill, name):
    from drills.models import DrillEvent, DrillRun

    url, _, _ = _targets(running_drill)[name]
    events = DrillEvent.objects.count()
    response = _client("manager").get(url)
    assert response.status_code == 302
    assert DrillEvent.objects.count() == events
    assert DrillRun.objects.count() == 1 and DrillRun.objects.get().status == "running"


def test_put_on_an_action_is_not_allowed(running_drill):
    url, _, _ = _targets(running_drill)["run_end"]
    assert _client("manager").put(url).status_code == 405


def test_viewer_ticking_a_step_is_refused_and_nothing_changes(running_drill, viewer_client):
    srun = running_drill.scenario_runs.order_by("position").first()
    item = srun.items.first()
    response = viewer_client.post(reverse("drills:item_tick", args=[running_drill.pk, item.pk]))
    assert response.status_code == 403
    assert "operator role" in response.content.decode()
    item.refresh_from_db()
    assert item.done_at is None


def test_index_query_count_is_pinned(running_drill, viewer_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(20):
        assert viewer_client.get(reverse("drills:index")).status_code == 200


def test_live_fragment_polls_until_the_drill_is_done(running_drill, operator_client):
    from drills.services import abort_drill

    url = reverse("drills:run_live", args=[running_drill.pk])
    assert operator_client.get(url).status_code == 200
    abort_drill(running_drill, reason="fire alarm")
    # The cleanup check was queued (no worker here): polling goes on until it reports.
    assert operator_client.get(url).status_code == 200
    from drills.services import verify_cleanup

    verify_cleanup(running_drill)
    assert operator_client.get(url).status_code == 286


def test_manager_creates_a_plan_with_a_duration_and_a_rule(manager_client, system):
    from drills.models import DrillPlan

    response = manager_client.post(
        reverse("drills:plan_new"),
        {
            "name": "Monthly DB drill",
            "systems": [system.pk],
            "time_budget": "1h30m",
            "rule": "FREQ=MONTHLY;BYDAY=1MO",
            "start_time": "14:00",
            "time_zone": "America/New_York",
            "enabled": "on",
        },
    )
    plan = DrillPlan.objects.get(name="Monthly DB drill")
    assert response.status_code == 302
    assert plan.time_budget.total_seconds() == 5400
    assert plan.time_zone == "America/New_York"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("time_budget", "two hours", "is not a duration"),
        ("time_budget", "0m", "positive time budget"),
        ("rule", "FREQ=HOURLY", "at most daily"),
        ("time_zone", "Europe/Atlantis", "not a known time zone"),
    ],
)
def test_bad_plan_input_is_refused_with_a_message(manager_client, field, value, message):
    from drills.models import DrillPlan

    data = {
        "name": "Bad",
        "time_budget": "2h",
        "rule": "FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1FR",
        "start_time": "10:00",
        "time_zone": "UTC",
        field: value,
    }
    response = manager_client.post(reverse("drills:plan_new"), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not DrillPlan.objects.exists()


def test_manager_adds_a_database_scenario_only_with_a_source(manager_client, manual_plan):
    url = reverse("drills:scenario_new", args=[manual_plan.pk])
    data = {"kind": "database_failure", "title": "DB down", "failure_type": ""}
    response = manager_client.post(url, data)
    assert "restores at least one source" in response.content.decode()
    source = SourceFactory(
        system=manual_plan.systems.first(), name="toolhub-db", kind="sqlite", path="/tmp/x.db"
    )
    response = manager_client.post(url, data | {"sources": [source.pk], "time_budget": "30m"})
    assert response.status_code == 302
    scenario = manual_plan.scenarios.get(title="DB down")
    assert scenario.failure_type == "database_failure"
    assert [link.source_name for link in scenario.source_links.all()] == ["toolhub-db"]
    assert scenario.order == 3


def test_manager_adds_a_failover_scenario_with_a_runbook_in_test_mode(manager_client, manual_plan):

    runbook = RunbookFactory(
        steps=[{"name": "check", "kind": "wait", "params": {"seconds": 0}, "verification": True}],
        system=manual_plan.systems.first(),
        name="Fail over the app node",
    )
    url = reverse("drills:scenario_new", args=[manual_plan.pk])
    data = {"kind": "failover", "title": "Simulate node failure", "failure_type": ""}
    response = manager_client.post(url, data)
    assert "Choose the runbook this scenario runs." in response.content.decode()
    response = manager_client.post(url, data | {"runbook": runbook.pk})
    assert response.status_code == 302
    scenario = manual_plan.scenarios.get(title="Simulate node failure")
    assert scenario.runbook == runbook and not scenario.live
    assert scenario.runbook_name == str(runbook)
    assert scenario.failure_type == "single_node"
