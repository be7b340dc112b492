"""Refusals with clear messages: empty plans, deleted sources, ending twice, closed drills."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from drills import services
from drills.models import CleanupState, DrillRun, DrillTransitionError, ScenarioStatus
from tests.drills.conftest import add_scenario, make_plan
from tests.factories import IncidentFactory, SourceFactory

pytestmark = pytest.mark.django_db


def test_plan_without_scenarios_is_refused(operator_client, system):
    plan = make_plan(systems=[system])
    response = operator_client.post(reverse("drills:plan_start", args=[plan.pk]), follow=True)
    assert "has no scenarios: add at least one" in response.content.decode()
    assert not DrillRun.objects.exists()


def test_scenario_pointing_at_a_deleted_source_is_refused(operator_client, system):
    source = SourceFactory(system=system, name="toolhub-db", kind="sqlite", path="/tmp/t.db")
    plan = make_plan(systems=[system])
    add_scenario(plan, "database_failure", "Simulate database failure", sources=[source])
    source.delete()
    response = operator_client.post(reverse("drills:plan_start", args=[plan.pk]), follow=True)
    body = response.content.decode()
    assert "restores source “toolhub-db”, which was deleted: edit the plan" in body
    assert not DrillRun.objects.exists()
    # The plan page says so before anyone presses start.
    page = operator_client.get(reverse("drills:plan", args=[plan.pk])).content.decode()
    assert "toolhub-db (deleted)" in page and "cannot start yet" in page


def test_manual_scenario_with_empty_checklist_and_callout_without_participants(system):
    plan = make_plan(systems=[system])
    add_scenario(plan, "manual", "Nothing to do")
    add_scenario(plan, "callout", "Call nobody")
    with pytest.raises(services.DrillRefused) as exc:
        services.start_drill(plan)
    assert "has an empty checklist" in str(exc.value)
    assert "the plan has none" in str(exc.value)


def _finish_manual_plan(drill, user):
    """Tick every item and acknowledge every call-out; return the drill, cleanup verified."""
    for srun in drill.scenario_runs.order_by("position"):
        srun.refresh_from_db()
        for item in srun.items.all():
            services.tick_item(item, user)
        for ack in srun.acks.all():
            services.acknowledge(ack, "portal", user)
    services.verify_cleanup(drill)
    drill.refresh_from_db()
    return drill


def test_ending_a_drill_twice_is_refused(running_drill, operator, operator_client):
    drill = _finish_manual_plan(running_drill, operator)
    assert drill.cleanup_state == CleanupState.VERIFIED
    services.end_drill(drill, operator)
    drill.refresh_from_db()
    ended_at = drill.ended_at
    with pytest.raises(DrillTransitionError, match="cannot end again"):
        services.end_drill(drill, operator)
    response = operator_client.post(reverse("drills:run_end", args=[drill.pk]), follow=True)
    assert "it cannot end again" in response.content.decode()
    drill.refresh_from_db()
    assert drill.ended_at == ended_at and drill.verdict == "passed"


def test_end_is_refused_while_scenarios_are_open_or_cleanup_unchecked(running_drill, operator):
    with pytest.raises(DrillTransitionError, match="Scenarios still open"):
        services.end_drill(running_drill, operator)
    drill = running_drill
    for srun in drill.scenario_runs.order_by("position"):
        srun.refresh_from_db()
        for item in srun.items.all():
            services.tick_item(item, operator)
        for ack in srun.acks.all():
            services.acknowledge(ack, "portal", operator)
    drill.refresh_from_db()
    assert drill.cleanup_state == CleanupState.CHECKING  # queued, no worker ran it yet
    with pytest.raises(DrillTransitionError, match="cleanup has not been checked"):
        services.end_drill(drill, operator)
    assert DrillRun.objects.get().status == "running"


def test_ticking_twice_or_after_the_end_is_refused(running_drill, operator, operator_client):
    srun = running_drill.scenario_runs.order_by("position").first()
    item = srun.items.first()
    services.tick_item(item, operator, note="done")
    with pytest.raises(DrillTransitionError, match="already ticked by otto"):
        services.tick_item(item, operator)
    services.abort_drill(running_drill, operator, reason="power cut")
    other = srun.items.filter(done_at__isnull=True).first()
    response = operator_client.post(
        reverse("drills:item_tick", args=[running_drill.pk, other.pk]), follow=True
    )
    assert "The drill has ended; its checklist can no longer change." in response.content.decode()
    other.refresh_from_db()
    assert other.done_at is None


def test_note_too_long_is_refused(running_drill, operator_client):
    item = running_drill.scenario_runs.order_by("position").first().items.first()
    response = operator_client.post(
        reverse("drills:item_tick", args=[running_drill.pk, item.pk]), {"note": "x" * 501},
        follow=True,
    )  # fmt: skip
    assert "note is too long" in response.content.decode()
    item.refresh_from_db()
    assert item.done_at is None


def test_abort_keeps_what_ran_and_the_verdict_says_aborted(running_drill, operator):
    first, second = running_drill.scenario_runs.order_by("position")
    done_item = first.items.first()
    services.tick_item(done_item, operator)
    drill = services.abort_drill(running_drill, operator, reason="real incident started")
    assert drill.status == "aborted" and drill.verdict == "aborted"
    assert drill.verdict_reasons == ["aborted: real incident started"]
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ScenarioStatus.FAILED
    assert "the drill was aborted while this scenario ran" in first.reasons
    assert second.status == ScenarioStatus.NOT_RUN
    done_item.refresh_from_db()
    assert done_item.done_at is not None  # what ran is kept
    with pytest.raises(DrillTransitionError, match="already aborted"):
        services.abort_drill(drill, operator)
    with pytest.raises(DrillTransitionError, match="was aborted"):
        services.end_drill(drill, operator)


def test_unticked_items_fail_a_manual_scenario_finished_early(running_drill, operator):
    srun = running_drill.scenario_runs.order_by("position").first()
    services.tick_item(srun.items.first(), operator, problem=True, note="service did not notice")
    srun.refresh_from_db()
    services.complete_scenario(srun, operator, note="out of time")
    srun.refresh_from_db()
    assert srun.status == ScenarioStatus.FAILED
    assert srun.reasons[0].startswith("2 of 3 checklist items not done")
    assert "problem at “Cut the link to the database”: service did not notice" in srun.reasons


def test_verdicts_follow_from_recorded_times(manual_plan, operator):
    """Network outage target 30m (seed): 25m passes, 35m fails; the budget judges the drill."""
    start = datetime(2026, 4, 3, 10, 0, tzinfo=UTC)
    manual_plan.scenarios.filter(kind="callout").delete()
    add_scenario(manual_plan, "manual", "Second", checklist="Only step")
    with time_machine.travel(start, tick=False):
        drill = services.start_drill(manual_plan, operator)
    first, second = drill.scenario_runs.order_by("position")
    for minutes, item in zip((5, 10, 25), first.items.all(), strict=True):
        with time_machine.travel(start + timedelta(minutes=minutes), tick=False):
            services.tick_item(item, operator)
    first.refresh_from_db()
    assert first.rto == timedelta(minutes=25) and first.rto_target == timedelta(minutes=30)
    assert first.status == ScenarioStatus.PASSED
    second.refresh_from_db()
    assert second.started == start + timedelta(minutes=25)
    with time_machine.travel(start + timedelta(hours=2, minutes=30), tick=False):
        services.tick_item(second.items.get(), operator)
        services.verify_cleanup(drill)
        drill = services.end_drill(drill, operator)
    assert drill.rto_achieved == timedelta(hours=2, minutes=30)
    assert drill.verdict == "failed"
    assert drill.verdict_reasons == ["the drill took 2h30m, over its 2h time budget"]


def test_start_drill_command_uses_the_same_path_and_refusals(manual_plan, system):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("start_drill", manual_plan.name, stdout=out)
    drill = DrillRun.objects.get()
    assert f"drill #{drill.pk} started: /drills/runs/{drill.pk}/" in out.getvalue()
    empty = make_plan(name="Empty", systems=[system])
    with pytest.raises(CommandError, match="has no scenarios"):
        call_command("start_drill", empty.name)
    with pytest.raises(CommandError, match="No drill plan named 'Nope'"):
        call_command("start_drill", "Nope")


def test_incident_linked_to_a_drill_gets_a_timeline_entry_when_it_ends(running_drill, operator):
    from django.contrib.contenttypes.models import ContentType

    from incidents.events import process_events
    from incidents.models import IncidentLink

    incident = IncidentFactory(title="Practice: database down")
    IncidentLink.objects.create(
        incident=incident,
        content_type=ContentType.objects.get_for_model(DrillRun),
        object_id=running_drill.pk,
    )
    services.abort_drill(running_drill, operator, reason="pager went off")
    process_events()  # the entry follows the drill's run event (no commit in this test)
    entry = incident.timeline.get()
    assert entry.automatic
    assert f"#{running_drill.pk}" in entry.text
    assert "verdict aborted: aborted: pager went off" in entry.text
