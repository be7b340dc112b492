"""Alerts people keep switched on: reminders, acknowledge and snooze (audited), alerts that
get worse, maintenance windows per system (recorded, not sent; sent when the window ends)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from dr_portal.models import AuditEntry
from incidents.alerts import alert, recover, remind, silence
from incidents.models import Alert, MaintenanceWindow
from tests.factories import BackupJobFactory, SourceFactory, SystemFactory

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)


def _subjects():
    return sorted({m.subject for m in mail.outbox})


@pytest.fixture
def job(db):
    return BackupJobFactory(source=SourceFactory(name="toolhub-db"))


def _fail(sync_queue, job, kind="backup_failed"):
    sync_queue(alert, f"backup:{job.pk}", kind, f"Backup {job.name} {kind}", "disk full")
    return Alert.objects.get(key=f"backup:{job.pk}", recovered__isnull=True)


def test_open_alert_is_sent_again_after_the_repeat_interval(sync_queue, oncall, settings, job):
    settings.DR_ALERT_REPEAT_S = 4 * 3600
    obj = _fail(sync_queue, job)
    mail.outbox.clear()
    assert sync_queue(remind, timezone.now() + HOUR) == 0
    assert mail.outbox == []
    assert sync_queue(remind, timezone.now() + 4 * HOUR + timedelta(seconds=1)) == 1
    assert _subjects() == [f"[DR Portal] Still open: {obj.title}"]
    assert "Acknowledge or snooze" in mail.outbox[0].body


def test_no_reminders_when_the_repeat_is_off(sync_queue, oncall, settings, job):
    settings.DR_ALERT_REPEAT_S = 0
    _fail(sync_queue, job)
    mail.outbox.clear()
    assert sync_queue(remind, timezone.now() + 100 * HOUR) == 0


def test_acknowledged_alert_sends_no_reminders_until_it_gets_worse(
    sync_queue, oncall, settings, job, operator
):
    settings.DR_ALERT_REPEAT_S = 3600
    obj = _fail(sync_queue, job, "backup_partial")
    silence(obj, operator, "replacing the disk")
    mail.outbox.clear()
    # Seen again, not worse: still quiet, and no reminder however long it stays open.
    _fail(sync_queue, job, "backup_partial")
    assert sync_queue(remind, timezone.now() + 48 * HOUR) == 0
    assert mail.outbox == []
    # Worse: the job now fails outright. Sent at once, the acknowledgement lifted.
    obj = _fail(sync_queue, job, "backup_failed")
    assert obj.kind == "backup_failed" and obj.silence == ""
    assert _subjects() == [f"[DR Portal] Worse: Backup {job.name} backup_failed"]


def test_snoozed_alert_is_sent_again_when_the_snooze_ends(
    sync_queue, oncall, settings, job, operator
):
    settings.DR_ALERT_REPEAT_S = 24 * 3600  # longer than the snooze: the end alone sends it
    obj = _fail(sync_queue, job)
    silence(obj, operator, "looking at it", until=timezone.now() + HOUR)
    assert obj.silence == "snoozed"
    mail.outbox.clear()
    assert sync_queue(remind, timezone.now() + 30 * timedelta(minutes=1)) == 0
    assert sync_queue(remind, timezone.now() + HOUR + timedelta(seconds=1)) == 1
    assert _subjects() == [f"[DR Portal] Still open: {obj.title}"]
    obj.refresh_from_db()
    assert obj.silence == ""


def test_maintenance_window_records_alerts_and_sends_them_when_it_ends(
    sync_queue, oncall, job, operator_client
):
    now = timezone.now()
    window = MaintenanceWindow.objects.create(
        system=job.source.system, starts=now - HOUR, ends=now + HOUR, reason="disk swap"
    )
    obj = _fail(sync_queue, job)
    assert obj.system_id == job.source.system_id
    assert mail.outbox == []  # recorded, not sent
    assert sync_queue(remind, now + timedelta(minutes=5)) == 0
    # Another system's alert is not held.
    other = SourceFactory(name="other-db", system=SystemFactory(name="Other system"))
    sync_queue(alert, f"rpo:{other.pk}", "rpo_breached", "RPO of other-db breached")
    assert len(mail.outbox) == 2
    mail.outbox.clear()

    response = sync_queue(
        operator_client.post, reverse("incidents:maintenance_end", args=[window.pk])
    )
    assert response.status_code == 302
    assert _subjects() == [f"[DR Portal] {obj.title}"]
    assert AuditEntry.objects.filter(action="end maintenance window").exists()


def test_recovery_inside_a_window_of_an_alert_never_sent_sends_nothing(sync_queue, oncall, job):
    now = timezone.now()
    MaintenanceWindow.objects.create(
        system=job.source.system, starts=now - HOUR, ends=now + HOUR, reason="upgrade"
    )
    _fail(sync_queue, job)
    sync_queue(recover, f"backup:{job.pk}")
    assert mail.outbox == []
    assert sync_queue(remind, now + 2 * HOUR) == 0  # recovered: nothing left to send


def test_test_mode_alert_is_never_sent_later(sync_queue, oncall, job):
    sync_queue(alert, f"backup:{job.pk}", "backup_failed", "t", notify=False)
    assert sync_queue(remind, timezone.now() + 100 * HOUR) == 0
    assert mail.outbox == []


# --- pages ---------------------------------------------------------------------------------


def test_operator_acknowledges_with_a_reason_and_it_is_audited(
    sync_queue, oncall, job, operator, operator_client, viewer_client
):
    obj = _fail(sync_queue, job)
    url = reverse("incidents:alert_silence", args=[obj.pk])
    assert viewer_client.post(url, {"reason": "x"}).status_code == 403
    assert operator_client.get(url).status_code == 405
    operator_client.post(url, {"reason": "   "})
    obj.refresh_from_db()
    assert obj.silence == ""  # no reason, nothing changes

    operator_client.post(url, {"reason": "disk replaced, rerunning", "snooze": "4"})
    obj.refresh_from_db()
    assert obj.silence == "snoozed" and obj.silence_reason == "disk replaced, rerunning"
    assert timedelta(hours=3.9) < obj.silenced_until - timezone.now() <= timedelta(hours=4)
    entry = AuditEntry.objects.get(action="snooze alert")
    assert "disk replaced, rerunning" in entry.detail and entry.actor_name == operator.username
    page = viewer_client.get(reverse("incidents:alerts")).content.decode()
    assert "snoozed" in page and "disk replaced, rerunning" in page

    operator_client.post(reverse("incidents:alert_unsilence", args=[obj.pk]))
    obj.refresh_from_db()
    assert obj.silence == ""
    assert AuditEntry.objects.filter(action="unsnooze alert").exists()


def test_maintenance_form_validates_and_the_dashboard_shows_the_window(
    job, operator_client, viewer_client
):
    url = reverse("incidents:maintenance")
    now = timezone.now()
    fmt = "%Y-%m-%dT%H:%M"
    data = {
        "system": job.source.system_id,
        "starts": (now + 2 * HOUR).strftime(fmt),
        "ends": (now + HOUR).strftime(fmt),
        "reason": "upgrade",
    }
    assert viewer_client.post(url, data).status_code == 403
    response = operator_client.post(url, data)
    assert response.status_code == 400
    assert "must end after it starts" in response.content.decode()
    response = operator_client.post(url, {**data, "ends": (now + 30 * 24 * HOUR).strftime(fmt)})
    assert "at most 14 days" in response.content.decode()
    response = operator_client.post(url, {**data, "ends": (now - HOUR).strftime(fmt)})
    assert "already be over" in response.content.decode()
    assert not MaintenanceWindow.objects.exists()

    response = operator_client.post(
        url, {**data, "starts": (now - HOUR).strftime(fmt), "ends": (now + HOUR).strftime(fmt)}
    )
    assert response.status_code == 302
    window = MaintenanceWindow.objects.get()
    assert window.is_active()
    assert AuditEntry.objects.filter(action="add maintenance window").exists()
    board = viewer_client.get(reverse("dashboard")).content.decode()
    assert 'id="maintenance"' in board and "in maintenance" in board and "upgrade" in board
