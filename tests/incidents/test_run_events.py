"""Run events: a transition writes one row; one consumer turns it into alerts and timeline entries.

The consumer (incidents.events.process_events) runs after the commit that wrote the event
and every minute; these tests call it directly where no commit happens.
"""

import ast
import logging
import threading
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from backups.models import BackupRun
from dr_portal.models import RunEvent
from dr_portal.runs import IllegalTransition, RunStatus
from incidents import events
from incidents.models import Alert, IncidentLink, TimelineEntry
from tests.factories import BackupRunFactory, IncidentFactory

ROOT = Path(__file__).resolve().parents[2]


def _linked_run():
    """A backup run linked to an open incident, claimed (so it can finish)."""
    run = BackupRunFactory(source_name="toolhub")
    incident = IncidentFactory(title="Nightly backups failing")
    IncidentLink.objects.create(
        incident=incident,
        content_type=ContentType.objects.get_for_model(BackupRun),
        object_id=run.pk,
    )
    assert run.claim()
    return run, incident


def _finished(run):
    return RunEvent.objects.filter(
        content_type=ContentType.objects.get_for_model(BackupRun),
        object_id=run.pk,
        transition=RunEvent.Transition.FINISHED,
    )


def test_a_finished_run_writes_exactly_one_event(db):
    run, _ = _linked_run()
    run.finish(RunStatus.FAILED, "pg_dump: connection refused")
    with pytest.raises(IllegalTransition):
        run.finish(RunStatus.SUCCEEDED)  # refused: and no second event
    event = _finished(run).get()
    assert (event.status, event.processed_at, event.attempts) == ("failed", None, 0)
    started = RunEvent.objects.filter(object_id=run.pk, transition=RunEvent.Transition.STARTED)
    assert started.count() == 1


def test_the_event_becomes_an_alert_and_a_timeline_entry_once(db):
    run, incident = _linked_run()
    run.finish(RunStatus.FAILED, "pg_dump: connection refused")
    assert not TimelineEntry.objects.exists()  # nothing happens inside the run's transition
    assert events.process_events() == 2  # started and finished
    assert events.process_events() == 0
    event = _finished(run).get()
    assert event.processed_at is not None and event.error == ""
    assert event.handled == ["anomalies", "backup_alerts", "timeline"]
    assert incident.timeline.filter(automatic=True).count() == 1
    alert = Alert.objects.get(kind="backup_failed")
    assert alert.seen_count == 1 and "connection refused" in alert.detail


def test_a_failing_handler_is_logged_and_the_event_retried(db, monkeypatch, caplog):
    run, incident = _linked_run()
    run.finish(RunStatus.FAILED, "disk full")

    def broken(event, run):
        raise RuntimeError("timeline table locked")

    monkeypatch.setattr(events, "timeline", broken)
    with caplog.at_level(logging.ERROR, logger="incidents.events"):
        events.process_events()
    event = _finished(run).get()
    assert f"run event #{event.pk}" in caplog.text and "handler timeline failed" in caplog.text
    assert event.processed_at is None and event.claimed_at is None  # retryable
    assert "timeline: RuntimeError: timeline table locked" in event.error
    assert event.handled == ["anomalies", "backup_alerts"]  # these are not run again
    assert not incident.timeline.exists()

    monkeypatch.undo()
    events.process_events()
    event.refresh_from_db()
    assert event.processed_at is not None and event.error == "" and event.attempts == 2
    assert incident.timeline.count() == 1
    assert Alert.objects.get(kind="backup_failed").seen_count == 1  # not alerted twice


def test_an_event_that_keeps_failing_is_given_up_with_its_error(db, monkeypatch):
    run, _ = _linked_run()
    run.finish(RunStatus.FAILED, "disk full")

    def broken(event, run):
        raise RuntimeError("still broken")

    monkeypatch.setattr(events, "timeline", broken)
    for _ in range(events.MAX_ATTEMPTS):
        events.process_events()
    event = _finished(run).get()
    assert event.failed and event.attempts == events.MAX_ATTEMPTS
    assert "still broken" in event.error


def test_a_claimed_event_is_not_claimed_again(db):
    run, _ = _linked_run()
    run.finish(RunStatus.SUCCEEDED)
    event = _finished(run).get()
    assert events.claim(event.pk)
    assert not events.claim(event.pk)  # another consumer holds it
    assert events.process_events() == 1  # only the started event was free


@pytest.mark.django_db(transaction=True)
def test_two_consumers_at_once_process_each_event_once(monkeypatch):
    run, incident = _linked_run()
    run.finish(RunStatus.FAILED, "pg_dump: connection refused")
    barrier = threading.Barrier(2, timeout=20)
    original = events.claim

    def claim_together(pk):
        if pk == _finished(run).get().pk:
            barrier.wait()  # both consumers saw the event pending and claim it at once
        return original(pk)

    monkeypatch.setattr(events, "claim", claim_together)
    counts, errors = [], []

    def consumer():
        try:
            counts.append(events.process_events())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(counts) == 2  # started + finished, each claimed by one consumer only
    assert incident.timeline.filter(automatic=True).count() == 1
    assert Alert.objects.get(kind="backup_failed").seen_count == 1


def test_a_finish_that_commits_runs_the_consumer(db, sync_queue):
    run, incident = _linked_run()
    sync_queue(run.finish, RunStatus.SUCCEEDED)
    assert _finished(run).get().processed_at is not None
    assert incident.timeline.count() == 1


def test_the_safety_net_schedule_exists(db):
    from django_q.models import Schedule

    from incidents.schedules import ensure_schedules

    ensure_schedules()
    schedule = Schedule.objects.get(name="system: process run events")
    assert schedule.func == "incidents.tasks.process_run_events"
    assert (schedule.schedule_type, schedule.minutes) == (Schedule.MINUTES, 1)


def _project_imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("dr_portal/runs.py", ("backups", "recovery", "drills", "incidents")),
        ("dr_portal/models.py", ("backups", "recovery", "drills", "incidents")),
        # recovery.readiness (RPO targets) is another slice's move; the chain to incidents is gone.
        ("backups/models.py", ("drills", "incidents")),
        ("recovery/models.py", ("drills", "incidents")),
        ("recovery/failover/models.py", ("drills", "incidents")),
        ("recovery/failover/tasks.py", ("drills", "incidents")),
    ],
)
def test_run_transitions_import_no_higher_layer(module, forbidden):
    bad = {m for m in _project_imports(ROOT / module) if m.split(".")[0] in forbidden}
    assert not bad, f"{module} imports {sorted(bad)}"


def test_drills_services_and_callout_do_not_import_each_other():
    assert "drills.services" not in _project_imports(ROOT / "drills/callout.py")


def test_old_processed_events_are_pruned_pending_and_given_up_ones_stay(db):
    from datetime import timedelta

    from django.utils import timezone

    from dr_portal.tasks import prune_task_records

    run, _ = _linked_run()
    run.finish(RunStatus.SUCCEEDED)
    long_ago = timezone.now() - timedelta(days=91)
    started, finished = RunEvent.objects.order_by("pk")
    RunEvent.objects.filter(pk=started.pk).update(processed_at=long_ago)
    RunEvent.objects.filter(pk=finished.pk).update(processed_at=long_ago, error="gave up")
    assert prune_task_records() == 1
    assert list(RunEvent.objects.values_list("pk", flat=True)) == [finished.pk]
