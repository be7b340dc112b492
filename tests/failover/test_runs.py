"""Runs through the task function: recording, test mode, rollbacks, cancel, manual steps through
the view, RTO and its split, one live run per system, the reaper, alerts, secrets never shown."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from dr_portal.runs import RunStatus
from recovery.failover import tasks
from recovery.failover.models import FailoverRun, LiveRunExists, StepRun
from tests.factories import RunbookFactory, SystemFactory
from tests.failover.runs import run_inline

pytestmark = pytest.mark.django_db


def test_run_records_every_step_and_measures_rto():
    runbook = RunbookFactory(
        steps=[
            {"name": "pause", "kind": "wait", "params": {"seconds": 0.05}},
            {
                "name": "check",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
        ]
    )
    run = run_inline(runbook, mode="live")
    assert run.status == "succeeded", run.error
    rows = list(run.step_runs.all())
    assert [r.status for r in rows] == ["succeeded", "succeeded"]
    assert all(r.started and r.finished and r.attempts == 1 for r in rows)
    assert run.rto is not None and run.rto.total_seconds() >= 0.05
    assert run.rto_target == timedelta(minutes=15)  # single node, from the recovery targets
    assert run.verdict == "met"
    assert run.automated_time.total_seconds() >= 0.05
    assert run.people_time == timedelta(0) and run.retry_time == timedelta(0)


def test_rto_counts_from_the_declared_failure_and_a_late_run_misses_its_target():
    runbook = RunbookFactory(
        steps=[
            {"name": "check", "kind": "command", "params": {"args": ["true"]}, "verification": True}
        ]
    )
    declared = timezone.now() - timedelta(minutes=20)
    run = run_inline(runbook, mode="live", declared_at=declared)
    assert run.rto >= timedelta(minutes=20)
    assert run.verdict == "missed"


def test_rto_ends_at_the_last_verification_step_not_at_the_end():
    runbook = RunbookFactory(
        steps=[
            {
                "name": "verify",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
            {"name": "tidy up", "kind": "wait", "params": {"seconds": 0.3}},
        ]
    )
    run = run_inline(runbook, mode="live")
    verify = run.step_runs.get(name="verify")
    assert run.rto == verify.finished - run.declared_at
    assert run.finished - run.declared_at >= run.rto + timedelta(seconds=0.3)


def test_no_verification_step_means_no_rto_and_says_so():
    run = run_inline(
        RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    )
    assert run.status == "succeeded" and run.rto is None
    assert "RTO not measured" in run.error


def test_test_mode_skips_side_effect_steps_and_shows_what_they_would_do(tmp_path):
    marker = tmp_path / "touched"
    runbook = RunbookFactory(
        steps=[
            {"name": "touch", "kind": "command", "params": {"args": ["touch", str(marker)]}},
            {
                "name": "check",
                "kind": "command",
                "side_effects": True,
                "params": {"args": ["true"]},
            },
            {"name": "wait", "kind": "wait", "params": {"seconds": 0}, "verification": True},
        ]
    )
    run = run_inline(runbook, mode="test")
    assert run.status == "succeeded", run.error
    rows = {r.name: r for r in run.step_runs.all()}
    assert rows["touch"].status == "skipped"
    assert rows["touch"].output == f"test mode: would run touch {marker}"
    assert rows["wait"].status == "succeeded"
    assert not marker.exists()


def test_a_failing_step_stops_the_run_and_rollbacks_run_newest_first(tmp_path):
    log = tmp_path / "log"

    def append(word):
        return {"args": ["sh", "-c", f"echo {word} >> {log}"]}

    runbook = RunbookFactory(
        steps=[
            {
                "name": "one",
                "kind": "command",
                "params": append("one"),
                "rollback": [{"name": "undo one", "kind": "command", "params": append("undo-one")}],
            },
            {
                "name": "two",
                "kind": "command",
                "params": append("two"),
                "rollback": [{"name": "undo two", "kind": "command", "params": append("undo-two")}],
            },
            {"name": "breaks", "kind": "command", "params": {"args": ["false"]}},
            {"name": "never", "kind": "command", "params": append("never")},
        ]
    )
    run = run_inline(runbook, mode="live")
    assert run.status == "failed"
    assert run.error == "step 'breaks' failed"
    assert log.read_text().split() == ["one", "two", "undo-two", "undo-one"]
    rows = list(run.step_runs.order_by("position"))
    assert [(r.name, r.status) for r in rows] == [
        ("one", "succeeded"),
        ("two", "succeeded"),
        ("breaks", "failed"),
        ("never", "not_run"),
        ("undo two", "succeeded"),
        ("undo one", "succeeded"),
    ]
    assert rows[4].rollback_of == rows[1] and rows[5].rollback_of == rows[0]
    assert run.rto is None


def test_continue_on_failure_keeps_going_and_ends_partial():
    runbook = RunbookFactory(
        steps=[
            {
                "name": "optional",
                "kind": "command",
                "params": {"args": ["false"]},
                "on_failure": "continue",
            },
            {
                "name": "verify",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
        ]
    )
    run = run_inline(runbook, mode="live")
    assert run.status == "partial"
    assert "optional" in run.error
    assert run.rto is not None


def test_a_step_timeout_kills_the_command_and_its_children(tmp_path):
    pidfile = tmp_path / "child.pid"
    runbook = RunbookFactory(
        steps=[
            {
                "name": "hangs",
                "kind": "command",
                "timeout": 1,
                "params": {"args": ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]},
            }
        ]
    )
    run = run_inline(runbook, mode="live")
    row = run.step_runs.get()
    assert run.status == "failed" and row.status == "timed_out"
    assert "process group" in row.output and "killed" in row.output
    import os

    child = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(child, 0)
            import time

            time.sleep(0.1)


def test_secrets_are_used_but_never_shown_in_outputs_logs_or_errors():
    token = "tok-9f8e7d6c5b4a"
    runbook = RunbookFactory(
        steps=[
            {
                "name": "uses secret",
                "kind": "command",
                "params": {"args": ["sh", "-c", 'echo "secret is $DR_STEP_SECRET"; exit 1']},
            }
        ],
        steps__secrets={"uses secret": token},
    )
    run = run_inline(runbook, mode="live")
    row = run.step_runs.get()
    assert "secret is ****" in row.output
    for text in (row.output, run.log, run.error, str(row.definition)):
        assert token not in text
    assert token not in str(runbook.steps.get().secret)


def test_only_one_live_run_per_system_is_enforced_by_the_database(
    django_capture_on_commit_callbacks,
):
    system = SystemFactory(name="tool-hub")
    first = RunbookFactory(
        steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}], system=system
    )
    second = RunbookFactory(
        steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}],
        system=system,
        name="Other runbook",
    )
    run = FailoverRun.start(first, "live")
    with pytest.raises(LiveRunExists, match="already queued or running"):
        FailoverRun.start(second, "live")
    # The constraint itself, not only the friendly check:
    with pytest.raises(IntegrityError), transaction.atomic():
        FailoverRun.objects.create(runbook=second, system=system, mode="live")
    # Test runs and other systems are not blocked, and a finished live run frees the system.
    FailoverRun.start(second, "test")
    FailoverRun.start(
        RunbookFactory(
            steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}],
            system=SystemFactory(name="other"),
        ),
        "live",
    )
    run.cancel()
    assert FailoverRun.start(second, "live").status == "queued"


def test_run_is_queued_for_a_worker_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "dr_portal.lib.queue.async_task", lambda func, *args, **kw: sent.append((func, args))
    )
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    with django_capture_on_commit_callbacks(execute=True):
        run = FailoverRun.start(runbook, "test")
    assert sent == [("recovery.failover.tasks.run_failover", (run.pk,))]


def test_a_redelivered_task_does_nothing_the_second_time(tmp_path):
    log = tmp_path / "log"
    runbook = RunbookFactory(
        steps=[
            {
                "name": "once",
                "kind": "command",
                "params": {"args": ["sh", "-c", f"echo x >> {log}"]},
            }
        ]
    )
    run = run_inline(runbook, mode="live")
    tasks.run_failover(run.pk)
    assert log.read_text() == "x\n"


def test_manual_step_waits_for_confirmation_through_the_view(
    operator, operator_client, monkeypatch
):
    runbook = RunbookFactory(
        steps=[
            {
                "name": "repoint app",
                "kind": "manual",
                "timeout": 30,
                "params": {"instruction": "Set DATABASE_URL and restart"},
            },
            {
                "name": "verify",
                "kind": "command",
                "params": {"args": ["true"]},
                "verification": True,
            },
        ]
    )
    run = FailoverRun.start(runbook, "live")
    seen = []

    def confirm_meanwhile(seconds):
        row = run.step_runs.get(name="repoint app")
        seen.append(row.status)
        if len(seen) == 1:
            # wrong method first: a GET changes nothing
            assert (
                operator_client.get(
                    reverse("recovery:failover:step_confirm", args=[run.pk, row.pk])
                ).status_code
                == 405
            )
            response = operator_client.post(
                reverse("recovery:failover:step_confirm", args=[run.pk, row.pk])
            )
            assert response.status_code == 302
        import time

        time.sleep(0.05)

    monkeypatch.setattr(tasks, "_pause", confirm_meanwhile)
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    assert seen[0] == "waiting"
    assert run.status == "succeeded", run.error
    row = run.step_runs.get(name="repoint app")
    assert row.status == "succeeded" and row.confirmed_by == operator and row.confirmed_at
    assert "confirmed by otto" in row.output
    assert row.waited_for_person > timedelta(0)
    assert run.people_time == row.waited_for_person
    assert run.rto >= run.people_time


def test_manual_step_times_out_when_nobody_confirms(monkeypatch):
    runbook = RunbookFactory(
        steps=[{"name": "nobody", "kind": "manual", "timeout": 0.3, "params": {"instruction": "x"}}]
    )
    monkeypatch.setattr(tasks, "CONFIRM_POLL", 0.05)
    run = run_inline(runbook, mode="test")
    row = run.step_runs.get()
    assert run.status == "failed" and row.status == "timed_out"
    assert "nobody confirmed" in row.output


def test_cancel_while_running_stops_at_once_and_runs_rollbacks(
    manager_client, tmp_path, monkeypatch
):
    log = tmp_path / "log"
    runbook = RunbookFactory(
        steps=[
            {
                "name": "change",
                "kind": "command",
                "params": {"args": ["sh", "-c", f"echo change >> {log}"]},
                "rollback": [
                    {
                        "name": "undo",
                        "kind": "command",
                        "params": {"args": ["sh", "-c", f"echo undo >> {log}"]},
                    }
                ],
            },
            {
                "name": "approve",
                "kind": "manual",
                "timeout": 60,
                "params": {"instruction": "approve"},
            },
            {
                "name": "never",
                "kind": "command",
                "params": {"args": ["sh", "-c", f"echo never >> {log}"]},
            },
        ]
    )
    run = FailoverRun.start(runbook, "live")
    monkeypatch.setattr(tasks, "CANCEL_POLL", 0)
    calls = []

    def cancel_meanwhile(seconds):
        calls.append(1)
        if len(calls) == 1:
            response = manager_client.post(reverse("recovery:failover:run_cancel", args=[run.pk]))
            assert response.status_code == 302

    monkeypatch.setattr(tasks, "_pause", cancel_meanwhile)
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert run.cancel_requested_by.username == "mona"
    assert run.error.startswith("cancelled by mona")
    assert log.read_text().split() == ["change", "undo"]
    statuses = {r.name: r.status for r in run.step_runs.all()}
    assert statuses == {
        "change": "succeeded",
        "approve": "cancelled",
        "never": "not_run",
        "undo": "succeeded",
    }


def test_cancel_of_a_queued_run_finishes_it_without_a_worker(operator_client):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    run = FailoverRun.start(runbook, "test")
    operator_client.post(reverse("recovery:failover:run_cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished
    tasks.run_failover(run.pk)  # the queued task arrives later and does nothing
    assert run.step_runs.get().status == "not_run"


def test_reaper_fails_a_run_whose_worker_died_and_nothing_stays_running():
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    run = FailoverRun.start(runbook, "live")
    assert run.claim()
    StepRun.objects.filter(run=run).update(status="running", started=timezone.now())
    FailoverRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    assert FailoverRun.reap() == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker lost" in run.error
    row = run.step_runs.get()
    assert row.status == "failed" and "worker lost" in row.output
    # the system is free for the next live run
    assert FailoverRun.start(runbook, "live").status == RunStatus.QUEUED


def test_started_and_finished_alerts_are_sent_once_per_run():
    """The alerts follow the run's events: processed explicitly (no commit in this test)."""
    from incidents.events import process_events
    from incidents.models import Alert

    runbook = RunbookFactory(
        steps=[{"name": "v", "kind": "command", "params": {"args": ["true"]}, "verification": True}]
    )
    run = run_inline(runbook, mode="live")
    process_events()
    process_events()  # a second pass sends nothing again
    kinds = sorted(
        Alert.objects.filter(key__startswith=f"failover:run:{run.pk}:").values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["failover_finished", "failover_started"]


def test_needs_verification_until_a_run_of_the_current_steps_succeeds():
    runbook = RunbookFactory(
        steps=[{"name": "v", "kind": "command", "params": {"args": ["true"]}, "verification": True}]
    )
    assert runbook.needs_verification
    run_inline(runbook, mode="test")
    runbook.refresh_from_db()
    assert not runbook.needs_verification
    step = runbook.steps.get()
    step.params = {"args": ["true", "again"]}
    step.save()
    runbook.refresh_config()
    assert runbook.needs_verification


def test_test_mode_shows_the_rollback_path_of_skipped_steps():
    runbook = RunbookFactory(
        steps=[
            {
                "name": "dns",
                "kind": "dns_update",
                "params": {"zone_id": "Z1", "name": "app.example.com", "values": ["10.0.2.100"]},
                "rollback": [
                    {
                        "name": "dns back",
                        "kind": "dns_update",
                        "params": {
                            "zone_id": "Z1",
                            "name": "app.example.com",
                            "values": ["10.0.1.100"],
                        },
                    }
                ],
            },
            {
                "name": "verify",
                "kind": "http_check",
                "params": {"url": "http://127.0.0.1:9/", "request_timeout": 0.5},
                "verification": True,
            },
        ]
    )
    run = run_inline(runbook, mode="test")
    rows = {r.name: r for r in run.step_runs.all()}
    assert run.status == "failed"
    assert rows["dns"].status == "skipped" and rows["dns back"].status == "skipped"
    assert (
        rows["dns back"].output
        == "test mode: would UPSERT A app.example.com → 10.0.1.100 (TTL 60) in zone Z1"
    )
    assert rows["dns"].duration >= timedelta(0)


def test_a_check_expecting_down_is_not_a_verification_step_by_default():
    from recovery.failover.steps import parse_steps

    down, up = parse_steps(
        [
            {
                "name": "primary down",
                "kind": "pg_ready",
                "params": {"host": "db", "expect": "down"},
            },
            {"name": "standby up", "kind": "pg_ready", "params": {"host": "db"}},
        ],
        allow_command=False,
    )
    assert down.verification is False and up.verification is True


def test_step_rows_are_not_audited_one_by_one_but_edits_of_runbooks_are():
    from dr_portal.audit_chain import SEAL_ACTION
    from dr_portal.models import AuditEntry

    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}])
    assert AuditEntry.objects.filter(object_type="recovery.runbookstep").exists()
    before = AuditEntry.objects.count()
    run_inline(runbook)
    # The one entry a run adds when it finishes is the seal of its evidence (dr_portal.audit_chain).
    assert (
        not AuditEntry.objects.filter(object_type__in=["recovery.steprun", "recovery.failoverrun"])
        .exclude(action=SEAL_ACTION)
        .exists()
    )
    assert (
        AuditEntry.objects.filter(object_type="recovery.failoverrun", action=SEAL_ACTION).count()
        == 1
    )
    assert AuditEntry.objects.count() == before + 1


def test_a_manual_rollback_step_still_waits_for_a_person_after_a_cancel(
    manager_client, operator_client, monkeypatch
):
    runbook = RunbookFactory(
        steps=[
            {
                "name": "change",
                "kind": "command",
                "params": {"args": ["true"]},
                "rollback": [
                    {
                        "name": "revert by hand",
                        "kind": "manual",
                        "timeout": 30,
                        "params": {"instruction": "Revert the firewall rule"},
                    }
                ],
            },
            {"name": "approve", "kind": "manual", "timeout": 30, "params": {"instruction": "go?"}},
        ]
    )
    run = FailoverRun.start(runbook, "live")
    monkeypatch.setattr(tasks, "CANCEL_POLL", 0)

    def act(seconds):
        waiting = run.step_runs.filter(status="waiting").first()
        if waiting.name == "approve":
            manager_client.post(reverse("recovery:failover:run_cancel", args=[run.pk]))
        elif waiting.name == "revert by hand":
            operator_client.post(
                reverse("recovery:failover:step_confirm", args=[run.pk, waiting.pk])
            )

    monkeypatch.setattr(tasks, "_pause", act)
    tasks.run_failover(run.pk)
    run.refresh_from_db()
    statuses = {r.name: r.status for r in run.step_runs.all()}
    assert run.status == "cancelled", run.error
    assert statuses == {
        "change": "succeeded",
        "approve": "cancelled",
        "revert by hand": "succeeded",
    }
    assert run.step_runs.get(name="revert by hand").confirmed_by.username == "otto"
