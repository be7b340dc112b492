"""Anomalies against the job's own history; flagged on the run and alerted.

Flags and alerts follow the run's event: these tests process the events explicitly
(outside a committing transaction the after-commit enqueue never fires).
"""

from datetime import timedelta

from django.utils import timezone

from backups import anomalies, services, tasks
from backups.anomalies import Sample, assess, repeated_failures
from backups.models import BackupRun
from dr_portal.runs import RunStatus
from incidents.events import process_events
from tests.factories import BackupRunFactory

HISTORY = [Sample(1000, 60)] * 10


def test_half_size_is_a_warning():
    found = assess(Sample(400, 60), HISTORY)
    assert [a["kind"] for a in found] == ["size_shrank"]
    assert "shrank by 60%" in found[0]["message"]


def test_normal_run_has_no_anomaly():
    assert assess(Sample(980, 55), HISTORY) == []


def test_suspiciously_fast_and_slow():
    assert [a["kind"] for a in assess(Sample(1000, 5), HISTORY)] == ["fast"]
    assert [a["kind"] for a in assess(Sample(1000, 400), HISTORY)] == ["slow"]


def test_no_baseline_without_history():
    assert assess(Sample(1, 1), HISTORY[:2]) == []


def test_repeated_failures():
    assert (
        repeated_failures(["failed", "failed", "failed", "succeeded"])["kind"]
        == "repeated_failures"
    )
    assert repeated_failures(["failed", "succeeded", "failed", "failed"]) is None


def _fake_history(job, count, size, seconds):
    now = timezone.now()
    for i in range(count):
        run = job.create_run("scheduled")
        when = now - timedelta(hours=count - i + 1)
        BackupRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            queued=when,
            started=when,
            finished=when + timedelta(seconds=seconds),
            bytes_stored=size,
        )


def test_real_backup_that_shrank_is_flagged_and_alerted(job):
    from incidents.models import Alert

    _fake_history(job, 10, 50_000_000, 1)
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    process_events()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    kinds = [a["kind"] for a in run.anomalies]
    assert "size_shrank" in kinds
    alert = Alert.objects.get(key=f"backup-anomaly:{job.pk}")
    assert "shrank" in alert.detail and alert.recovered is None


def test_failed_run_alerts_and_success_recovers(job, sqlite_source, tmp_path):
    from incidents.models import Alert

    path = sqlite_source.path
    sqlite_source.path = str(tmp_path / "missing.db")
    sqlite_source.save()
    for _ in range(3):
        run = services.start_run(job, "manual")
        tasks.run_backup(run.pk)
    process_events()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert [a["kind"] for a in run.anomalies] == ["repeated_failures"]
    alert = Alert.objects.get(key=f"backup:{job.pk}")
    assert alert.kind == "backup_failed" and alert.recovered is None
    assert Alert.objects.filter(key=f"backup:{job.pk}").count() == 1  # one per condition
    sqlite_source.path = path
    sqlite_source.save()
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    process_events()
    alert.refresh_from_db()
    assert alert.recovered is not None


def test_detect_ignores_runs_without_job(db):
    run = BackupRunFactory(source_name="x", status=RunStatus.SUCCEEDED)
    assert anomalies.detect(run) == []
