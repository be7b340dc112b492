"""A whole drill end to end: a database-failure scenario restored from a real backup into
real scratch PostgreSQL by the recovery app's restore-test task (django-q2 in sync mode),
then a manual checklist ticked through the views, cleanup verified, ended, reported.

Transactional: the recovery task closes old connections like any worker does, which a
test wrapped in one transaction would not survive. The flush after each one runs the
data migrations' seeds again (dr_portal.setup.reseed), so targets are back for the next.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from drills.models import CleanupState, DrillRun, ScenarioStatus
from recovery.engine.pg import create_database, database_exists, drop_database
from tests.drills.conftest import add_scenario, make_plan
from tests.factories import RestoreTestFactory
from tests.recovery.pgutil import SERVER
from tests.support.data import backup

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgres,
    pytest.mark.slow,
]

T0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)  # backup taken
DECLARED = T0 + timedelta(minutes=30)  # failure declared


def test_database_failure_and_manual_drill_runs_end_to_end(
    pg_source, operator_client, sync_queue, work_dir
):
    from recovery.models import RestoreTest

    plan = make_plan(systems=[pg_source.system], time_budget=timedelta(hours=2))
    add_scenario(
        plan,
        "database_failure",
        "Simulate database failure",
        sources=[pg_source],
        time_budget=timedelta(minutes=30),
    )
    add_scenario(plan, "manual", "Document results", checklist="Write RTO and RPO\nList the issues")

    with time_machine.travel(T0, tick=True):
        taken = backup(pg_source)

    leftover = None
    try:
        with time_machine.travel(DECLARED, tick=True):
            response = operator_client.post(reverse("drills:plan_start", args=[plan.pk]))
            drill = DrillRun.objects.get()
            assert response.status_code == 302 and response["Location"] == drill.get_absolute_url()
            # The restore test ran in the worker (sync mode) while the request committed.
            test = RestoreTest.objects.get()
            assert test.status == "succeeded", test.error
            assert test.backup_run_id == taken.pk
            # A scratch database "left behind" inside the drill's window: cleanup must drop it.
            leftover = f"dr_scratch_{int(DECLARED.timestamp()) + 60}_deadbeef"
            create_database(SERVER, leftover)
            live = operator_client.get(reverse("drills:run_live", args=[drill.pk]))
            assert live.status_code == 200  # still running: polling continues

        db_run, manual = drill.scenario_runs.order_by("position")
        assert list(db_run.restore_tests.all()) == [test]
        assert db_run.status == ScenarioStatus.PASSED, db_run.reasons
        assert db_run.started == drill.declared_at
        assert db_run.rto == test.finished - db_run.started
        assert db_run.rto_target == timedelta(hours=4)  # seed: database failure
        assert db_run.rpo == db_run.started - taken.data_taken_at
        assert timedelta(minutes=29) < db_run.rpo < timedelta(minutes=31)
        assert db_run.rpo_target == timedelta(hours=1)  # seed: critical data
        assert manual.status == ScenarioStatus.RUNNING

        item1, item2 = manual.items.order_by("position")
        t1 = manual.started + timedelta(minutes=3)
        t2 = manual.started + timedelta(minutes=7)
        with time_machine.travel(t1, tick=False):
            r = operator_client.post(
                reverse("drills:item_tick", args=[drill.pk, item1.pk]), {"note": "RTO ok"}
            )
            assert r.status_code == 302
        with time_machine.travel(t2, tick=False):
            operator_client.post(reverse("drills:item_tick", args=[drill.pk, item2.pk]))
        manual.refresh_from_db()
        assert manual.status == ScenarioStatus.PASSED
        assert manual.rto == timedelta(minutes=7)
        assert manual.recovered_at == t2

        # Both scenarios done: the cleanup check ran (sync mode) and dropped the leftover.
        drill.refresh_from_db()
        assert drill.cleanup_state == CleanupState.VERIFIED
        checks = {c.resource: c for c in drill.cleanup_checks.all()}
        assert checks[f"scratch database {leftover}"].removed
        assert not database_exists(SERVER, leftover)
        assert checks[f"restore test #{test.pk}"].gone

        with time_machine.travel(t2 + timedelta(minutes=1), tick=False):
            r = operator_client.post(reverse("drills:run_end", args=[drill.pk]))
        assert r.status_code == 302
        drill.refresh_from_db()
        assert drill.status == "ended" and drill.verdict == "passed", drill.verdict_reasons
        assert drill.rto_achieved == t2 - drill.declared_at
        assert drill.rpo_achieved == db_run.rpo and drill.rpo_target == timedelta(hours=1)

        # Ending twice is refused with a message, nothing changes.
        r = operator_client.post(reverse("drills:run_end", args=[drill.pk]), follow=True)
        assert "cannot end again" in r.content.decode()
        assert DrillRun.objects.get().ended_at == drill.ended_at

        # The timeline says who did what.
        texts = list(drill.events.values_list("actor_name", "text"))
        assert ("otto", "Ticked “Write RTO and RPO” — RTO ok") in texts
        assert any(t.startswith("Drill ended: passed") for _, t in texts)
        live = operator_client.get(reverse("drills:run_live", args=[drill.pk]))
        assert live.status_code == 286
    finally:
        if leftover:
            drop_database(SERVER, leftover)


def test_missed_rto_target_fails_the_scenario_and_the_drill(
    sqlite_source, operator_client, sync_queue, work_dir
):
    """The demo-style SQLite source, with an RTO target the restore cannot meet."""
    from recovery.models import RTOTarget

    RTOTarget.objects.update_or_create(
        failure_type="database_failure", defaults={"target": timedelta(microseconds=1)}
    )
    plan = make_plan(systems=[sqlite_source.system])
    add_scenario(plan, "database_failure", "Restore toolhub-db", sources=[sqlite_source])
    with time_machine.travel(T0, tick=True):
        backup(sqlite_source)
    with time_machine.travel(DECLARED, tick=True):
        operator_client.post(reverse("drills:plan_start", args=[plan.pk]))
        drill = DrillRun.objects.get()
        operator_client.get(reverse("drills:run", args=[drill.pk]))  # the page syncs the drill
        srun = drill.scenario_runs.get()
        assert srun.status == ScenarioStatus.FAILED
        assert srun.rto > srun.rto_target
        assert any("over the 1s target" in r or "over the" in r for r in srun.reasons)
        drill.refresh_from_db()
        assert drill.cleanup_state == CleanupState.VERIFIED  # SQLite: work directories gone
        operator_client.post(reverse("drills:run_end", args=[drill.pk]))
    drill.refresh_from_db()
    assert drill.verdict == "failed"
    assert any("Restore toolhub-db" in r for r in drill.verdict_reasons)


def test_cleanup_never_drops_a_scratch_database_while_a_restore_test_runs(pg_source, operator):
    """A restore test running elsewhere may own the scratch database: report, do not drop."""
    from drills import services
    from drills.models import ScenarioRun

    plan = make_plan(systems=[pg_source.system])
    add_scenario(plan, "manual", "Note it", checklist="One")
    with time_machine.travel(DECLARED, tick=False):
        drill = services.start_drill(plan, operator)
    srun = ScenarioRun.objects.get(drill=drill)
    done = RestoreTestFactory(source=pg_source, status="succeeded", finished=DECLARED)
    srun.restore_tests.add(done)
    RestoreTestFactory(source=pg_source, status="running")  # someone else's
    name = f"dr_scratch_{int(DECLARED.timestamp()) + 30}_cafe"
    create_database(SERVER, name)
    try:
        with time_machine.travel(DECLARED + timedelta(minutes=5), tick=False):
            assert services.verify_cleanup(drill) == CleanupState.FAILED
        check = drill.cleanup_checks.get(resource=f"scratch database {name}")
        assert not check.gone and "another restore test is running" in check.detail
        assert database_exists(SERVER, name)
    finally:
        drop_database(SERVER, name)


def test_source_without_a_backup_fails_the_scenario_with_the_reason(
    sqlite_source, operator, sync_queue, work_dir
):
    from drills import services

    plan = make_plan(systems=[sqlite_source.system])
    add_scenario(plan, "database_failure", "Restore toolhub-db", sources=[sqlite_source])
    drill = services.sync(services.start_drill(plan, operator))
    srun = drill.scenario_runs.get()
    assert srun.status == ScenarioStatus.FAILED
    assert "has no good backup" in srun.reasons[0]
    assert srun.rto is not None and srun.recovered_at is None
