"""Alerts people keep switched on: a new source does not page before its first backup had a
chance, a test-mode failover is recorded but never pages, and alerts about deleted objects
close."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from backups.models import Source
from incidents.alerts import alert
from incidents.events import process_events
from incidents.models import Alert, Notification
from incidents.tasks import check_rpo_targets
from tests.factories import BackupJobFactory, RunbookFactory, SourceFactory
from tests.failover.runs import run_inline

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)
STEPS = [{"name": "v", "kind": "command", "params": {"args": ["true"]}, "verification": True}]


def rpo_alert(source):
    return Alert.objects.filter(key=f"rpo:{source.pk}", recovered__isnull=True).first()


def test_a_new_source_without_a_job_never_pages(oncall):
    with time_machine.travel(T0, tick=False):
        source = SourceFactory(data_class="critical")
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        check_rpo_targets()
    assert rpo_alert(source) is None and not Notification.objects.exists()


def test_a_new_source_pages_after_its_first_backup_slot_and_an_hour(oncall):
    with time_machine.travel(T0, tick=False):
        source = SourceFactory(data_class="critical")
        BackupJobFactory(source=source, schedule="0 * * * *")  # first slot 11:00
    with time_machine.travel(T0 + timedelta(seconds=30), tick=False):
        check_rpo_targets()
        assert rpo_alert(source) is None  # seconds old: no page
    with time_machine.travel(datetime(2026, 3, 2, 11, 59, tzinfo=UTC), tick=False):
        check_rpo_targets()
        assert rpo_alert(source) is None  # 11:00 slot + 1 h not over yet
    with time_machine.travel(datetime(2026, 3, 2, 12, 1, tzinfo=UTC), tick=False):
        check_rpo_targets()
        assert rpo_alert(source) is not None  # still no backup: now it pages


def test_the_grace_setting_overrides_the_schedule(oncall, settings):
    settings.DR_NEW_SOURCE_GRACE_S = 600
    with time_machine.travel(T0, tick=False):
        source = SourceFactory(data_class="critical")
        BackupJobFactory(source=source, schedule="0 3 * * *")
    with time_machine.travel(T0 + timedelta(minutes=11), tick=False):
        check_rpo_targets()
    assert rpo_alert(source) is not None


def test_a_test_mode_failover_is_recorded_but_never_pages(oncall):
    runbook = RunbookFactory(steps=STEPS)
    run = run_inline(runbook, mode="test")
    process_events()
    kinds = set(
        Alert.objects.filter(key__startswith=f"failover:run:{run.pk}:").values_list(
            "kind", flat=True
        )
    )
    assert kinds == {"failover_started", "failover_finished"}  # on the alerts page
    assert not Notification.objects.exists() and mail.outbox == []


def test_a_live_failover_still_pages(oncall):
    runbook = RunbookFactory(steps=STEPS)
    run_inline(runbook, mode="live")
    process_events()
    assert Notification.objects.filter(alert__kind="failover_started").exists()


def test_deleting_a_source_closes_its_open_alerts(oncall):
    source = SourceFactory()
    other = SourceFactory()
    for src in (source, other):
        alert(f"rpo:{src.pk}", "rpo_breached", f"RPO of {src.name} breached")
        alert(f"restore-test:{src.pk}", "restore_test_failed", "failed")
    job = BackupJobFactory(source=other)
    alert(f"backup:{job.pk}", "backup_failed", "Backup failed")
    Source.objects.filter(pk=source.pk).delete()
    job.delete()

    check_rpo_targets()

    open_keys = set(
        Alert.objects.filter(recovered__isnull=True, event=False).values_list("key", flat=True)
    )
    assert f"rpo:{source.pk}" not in open_keys and f"restore-test:{source.pk}" not in open_keys
    assert f"backup:{job.pk}" not in open_keys
    assert f"restore-test:{other.pk}" in open_keys  # the living source's alert stays
