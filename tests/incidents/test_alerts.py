"""alert()/recover(): one message per condition, one recovery, events once, never raising."""

import pytest
from django.core import mail

from incidents.alerts import alert, recover
from incidents.models import Alert, Notification


def _subjects():
    return [m.subject for m in mail.outbox]


def test_alert_twice_sends_one_message_per_contact(sync_queue, oncall):
    sync_queue(alert, "backup:job:1", "backup_failed", "Backup nightly failed", "disk full")
    sync_queue(alert, "backup:job:1", "backup_failed", "Backup nightly failed", "disk full again")
    assert sorted(m.to[0] for m in mail.outbox) == ["pat@example.com", "sam@example.com"]
    assert Alert.objects.get().seen_count == 2
    assert Alert.objects.get().detail == "disk full again"


def test_recover_sends_one_recovered_then_nothing(sync_queue, oncall):
    sync_queue(alert, "rpo:src:1", "rpo_breached", "RPO breached for toolhub")
    mail.outbox.clear()
    sync_queue(recover, "rpo:src:1")
    assert len(mail.outbox) == 2
    assert all(s.startswith("[DR Portal] Recovered: RPO breached") for s in _subjects())
    mail.outbox.clear()
    sync_queue(recover, "rpo:src:1")
    assert mail.outbox == []


def test_condition_after_recovery_alerts_again(sync_queue, oncall):
    sync_queue(alert, "k", "backup_failed", "failed")
    sync_queue(recover, "k")
    mail.outbox.clear()
    sync_queue(alert, "k", "backup_failed", "failed")
    assert len(mail.outbox) == 2
    assert Alert.objects.filter(key="k").count() == 2


def test_recover_unknown_key_sends_nothing(sync_queue, oncall):
    sync_queue(recover, "never-raised")
    assert mail.outbox == []
    assert not Notification.objects.exists()


def test_event_is_sent_once(sync_queue, oncall):
    sync_queue(alert, "failover:7:started", "failover_started", "Failover 7 started")
    sync_queue(alert, "failover:7:started", "failover_started", "Failover 7 started")
    assert len(mail.outbox) == 2
    sync_queue(recover, "failover:7:started")
    assert len(mail.outbox) == 2


def test_alert_never_raises_into_caller(db, monkeypatch, caplog):
    def boom(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr("incidents.alerts._alert", boom)
    monkeypatch.setattr("incidents.alerts._recover", boom)
    alert("k", "backup_failed", "x")
    recover("k")
    assert "database on fire" in caplog.text


@pytest.mark.django_db
def test_alert_records_rows_without_sending_inline(oncall, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert("k", "backup_failed", "failed")
    assert mail.outbox == []
    assert Notification.objects.filter(status="pending").count() == 2
    assert len(callbacks) == 2
