"""Failover and network-failure scenarios: the recovery app's runbooks, run by its own task
(django-q2 sync mode), in test mode unless the scenario says live (a test environment)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from drills import services
from drills.models import ScenarioStatus
from recovery.failover.models import FailoverRun
from tests.drills.conftest import add_scenario, make_plan
from tests.factories import RunbookFactory

pytestmark = pytest.mark.django_db

# In test mode a step with side effects runs only with its test_params (a test environment).
CHECK = {"name": "service answers", "kind": "command", "params": {"args": ["true"]},
         "test_params": {"args": ["true"]}, "verification": True}  # fmt: skip


def test_node_failure_runs_the_runbook_in_test_mode_and_is_scored(
    system, operator_client, sync_queue, django_capture_on_commit_callbacks
):
    runbook = RunbookFactory(
        steps=[{"name": "pause", "kind": "wait", "params": {"seconds": 0.05}}, CHECK],
        system=system,
        name="Fail over the app node",
    )
    checks = RunbookFactory(
        steps=[CHECK], system=system, name="Network checks", failure_type="network_outage"
    )
    plan = make_plan(systems=[system])
    add_scenario(plan, "failover", "Simulate node failure", runbook=runbook)
    add_scenario(plan, "network_failure", "Simulate network failure", runbook=checks)
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(reverse("drills:plan_start", args=[plan.pk]))
    drill = plan.runs.get()
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.get(reverse("drills:run_live", args=[drill.pk]))  # sync: next starts
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.get(reverse("drills:run_live", args=[drill.pk]))
    node, network = drill.scenario_runs.order_by("position")
    runs = list(FailoverRun.objects.order_by("pk"))
    assert [r.mode for r in runs] == ["test", "test"]
    assert node.failover_run == runs[0] and network.failover_run == runs[1]
    assert runs[0].declared_at == node.started
    assert node.status == ScenarioStatus.PASSED, node.reasons
    assert node.rto == runs[0].rto and node.rto >= timedelta(seconds=0.05)
    assert node.rto_target == timedelta(minutes=15)  # seed: single node
    assert network.status == ScenarioStatus.PASSED
    assert network.rto_target == timedelta(minutes=30)  # seed: network outage
    drill.refresh_from_db()
    assert drill.cleanup_state == "verified"
    assert {c.resource for c in drill.cleanup_checks.all()} == {
        f"failover run #{runs[0].pk}",
        f"failover run #{runs[1].pk}",
    }


def test_failed_runbook_fails_the_scenario_with_its_error(
    system, operator, sync_queue, django_capture_on_commit_callbacks
):
    runbook = RunbookFactory(
        steps=[
            {
                "name": "broken",
                "kind": "command",
                "params": {"args": ["false"]},
                "test_params": {"args": ["false"]},
            }
        ],
        system=system,
    )
    plan = make_plan(systems=[system])
    add_scenario(plan, "failover", "Simulate node failure", runbook=runbook)
    with django_capture_on_commit_callbacks(execute=True):
        drill = services.start_drill(plan, operator)
    services.sync(drill)
    srun = drill.scenario_runs.get()
    assert srun.status == ScenarioStatus.FAILED
    assert srun.reasons[0].startswith(f"{srun.failover_run} failed")


def test_deleted_runbook_is_refused_at_start(system, operator):
    runbook = RunbookFactory(steps=[CHECK], system=system)
    plan = make_plan(systems=[system])
    add_scenario(plan, "failover", "Simulate node failure", runbook=runbook)
    runbook.delete()
    with pytest.raises(services.DrillRefused, match="which was deleted: edit the plan"):
        services.start_drill(plan, operator)


def test_test_mode_run_without_a_verification_fails_for_want_of_an_rto(
    system, operator, sync_queue, django_capture_on_commit_callbacks
):
    runbook = RunbookFactory(steps=[{"name": "promote", "kind": "command", "params": {"args": ["true"]},
          "verification": True}], system=system)  # fmt: skip
    plan = make_plan(systems=[system])
    add_scenario(plan, "failover", "Simulate node failure", runbook=runbook)
    with django_capture_on_commit_callbacks(execute=True):
        drill = services.start_drill(plan, operator)
    services.sync(drill)
    srun = drill.scenario_runs.get()
    assert srun.failover_run.status == "succeeded" and srun.failover_run.rto is None
    assert srun.status == ScenarioStatus.FAILED
    assert "measured no RTO" in srun.reasons[0]
