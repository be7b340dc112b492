"""Delivery: email through the outbox, webhooks to a real HTTP receiver, failures retried."""

import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from incidents import tasks
from incidents.alerts import alert
from incidents.models import DeliveryAttempt, Notification, Webhook
from tests.factories import ContactFactory


class Receiver:
    """A real webhook endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self):
        self.bodies, self.paths, self.status = [], [], 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.paths.append(self.path)
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hooks/T000/B000/s3cr3tT0ken"):
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver(settings):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # the receiver listens on loopback
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_email_reaches_only_on_call_contacts(sync_queue, oncall):
    sync_queue(
        alert, "backup:1", "backup_failed", "Backup nightly failed", "pg_dump: connection refused"
    )
    assert sorted(m.to[0] for m in mail.outbox) == ["pat@example.com", "sam@example.com"]
    message = mail.outbox[0]
    assert message.subject == "[DR Portal] Backup nightly failed"
    assert "pg_dump: connection refused" in message.body
    assert Notification.objects.filter(status="sent").count() == 2
    assert DeliveryAttempt.objects.filter(ok=True).count() == 2


def test_emails_are_plain_text_and_one_line_subjects(sync_queue, oncall):
    sync_queue(
        alert, "k", "backup_failed", "Bad\nBcc: evil@example.com <script>", "<script>x</script>"
    )
    message = mail.outbox[0]
    assert message.content_subtype == "plain"
    assert not getattr(message, "alternatives", None)
    assert "\n" not in message.subject
    assert "<script>x</script>" in message.body  # plain text: shown, never interpreted
    assert message.to == ["pat@example.com"] and not message.bcc


def test_webhooks_receive_slack_compatible_json(sync_queue, oncall, receiver):
    Webhook.objects.create(name="ops-channel", url=receiver.url("/global"))
    pat = oncall[0]
    pat.webhook_url = receiver.url("/pat")
    pat.save()
    sync_queue(alert, "rpo:1", "rpo_breached", "RPO breached for toolhub", url="/backups/")
    assert sorted(receiver.paths) == ["/global", "/pat"]
    for body in receiver.bodies:
        assert set(body) == {"text"}
        assert body["text"].startswith("[DR Portal] RPO breached for toolhub")
    hooks = Notification.objects.filter(channel="webhook")
    assert {n.recipient for n in hooks} == {"webhook ops-channel", "webhook of Pat Primary"}
    assert all("127.0.0.1" not in n.recipient for n in hooks)


def test_failing_webhook_is_retried_with_backoff_and_caller_unaffected(sync_queue, db, receiver):
    Webhook.objects.create(name="ops", url=receiver.url())
    receiver.status = 500
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        result = sync_queue(alert, "k", "backup_failed", "Backup failed")  # must not raise
    assert result is None
    note = Notification.objects.get()
    assert (note.status, note.attempts) == ("retry", 1)
    assert note.last_error == "DeliveryError: webhook answered HTTP 500"
    assert note.next_attempt == start + tasks.BACKOFF[0]
    assert "s3cr3tT0ken" not in note.last_error

    # Not yet due: the sweeper leaves it alone.
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        assert tasks.retry_due_notifications() == 0
    receiver.status = 200
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        assert tasks.retry_due_notifications() == 1
    note.refresh_from_db()
    assert (note.status, note.attempts) == ("sent", 2)
    assert [a.ok for a in note.tries.all()] == [False, True]
    assert len(receiver.bodies) == 2


def test_unreachable_webhook_error_hides_the_url(db, settings):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # reachable in principle, closed in fact
    port = _closed_port()
    hook = Webhook.objects.create(name="down", url=f"http://127.0.0.1:{port}/hooks/s3cr3tT0ken")
    alert_row = _raw_alert()
    note = Notification.objects.create(
        alert=alert_row,
        channel="webhook",
        webhook=hook,
        recipient="webhook down",
        subject="s",
        body="b",
    )
    assert tasks.deliver_notification(note.pk) == "retry"
    note.refresh_from_db()
    assert note.last_error.startswith("DeliveryError: webhook unreachable")
    assert "s3cr3tT0ken" not in note.last_error


def _raw_alert():
    from incidents.models import Alert

    return Alert.objects.create(key="raw", kind="backup_failed", title="raw")


def test_failing_smtp_is_recorded_retried_then_given_up(sync_queue, oncall, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
        "127.0.0.1",
        _closed_port(),
        2,
    )
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sync_queue(alert, "k", "restore_test_failed", "Restore test failed")  # caller unaffected
    notes = list(Notification.objects.all())
    assert len(notes) == 2
    assert all(n.status == "retry" and n.attempts == 1 for n in notes)
    assert all("ConnectionRefusedError" in n.last_error for n in notes)
    moment = start
    for wait in tasks.BACKOFF:
        moment += wait + timedelta(seconds=1)
        with time_machine.travel(moment, tick=False):
            tasks.retry_due_notifications()
    for n in notes:
        n.refresh_from_db()
        assert (n.status, n.attempts) == ("failed", tasks.MAX_ATTEMPTS)
        assert n.tries.filter(ok=False).count() == tasks.MAX_ATTEMPTS
    with time_machine.travel(moment + timedelta(days=1), tick=False):
        assert tasks.retry_due_notifications() == 0  # given up: no more tries


def test_redelivered_task_sends_once(db, oncall):
    note = Notification.objects.create(
        alert=_raw_alert(),
        channel="email",
        contact=oncall[0],
        recipient="pat@example.com",
        subject="s",
        body="b",
    )
    assert tasks.deliver_notification(note.pk) == "sent"
    assert tasks.deliver_notification(note.pk) == "not due"
    assert len(mail.outbox) == 1


def test_worker_lost_while_sending_is_retried_after_lease(db, oncall):
    note = Notification.objects.create(
        alert=_raw_alert(),
        channel="email",
        contact=oncall[0],
        recipient="pat@example.com",
        subject="s",
        body="b",
        status="sending",
        next_attempt=timezone.now() + tasks.SENDING_LEASE,
    )
    assert tasks.retry_due_notifications() == 0
    with time_machine.travel(timezone.now() + tasks.SENDING_LEASE + timedelta(seconds=5)):
        assert tasks.retry_due_notifications() == 1
    note.refresh_from_db()
    assert note.status == "sent"


def test_removed_webhook_gives_up_at_once(db):
    hook = Webhook.objects.create(name="gone", url="https://example.invalid/x")
    note = Notification.objects.create(
        alert=_raw_alert(),
        channel="webhook",
        webhook=hook,
        recipient="webhook gone",
        subject="s",
        body="b",
    )
    hook.delete()
    assert tasks.deliver_notification(note.pk) == "failed"


def test_same_person_in_two_roles_gets_one_email(sync_queue, db):
    ContactFactory(role="On-Call", name="Kim", email="kim@example.com", on_call="primary")
    ContactFactory(role="DBA", name="Kim", email="KIM@example.com", on_call="primary")
    sync_queue(alert, "k", "backup_failed", "x")
    assert len(mail.outbox) == 1


def test_followup_owner_is_notified_with_on_call(sync_queue, oncall):
    owner = ContactFactory(role="DBA", name="Dee", email="dee@example.com")
    sync_queue(alert, "f", "followup_overdue", "Follow-up overdue", contacts=[owner])
    assert sorted(m.to[0] for m in mail.outbox) == [
        "dee@example.com",
        "pat@example.com",
        "sam@example.com",
    ]


def test_command_sends_test_notification_now(oncall):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("send_test_notification", "--now", stdout=out)
    assert "Email to pat@example.com: sent" in out.getvalue()
    assert sorted(m.to[0] for m in mail.outbox) == ["pat@example.com", "sam@example.com"]


def test_command_says_when_nobody_is_on_call(db):
    import io

    from django.core.management import call_command

    err = io.StringIO()
    call_command("send_test_notification", stderr=err)
    assert "Nobody to notify" in err.getvalue()


def test_webhook_text_cannot_mention_or_link(sync_queue, db, receiver):
    Webhook.objects.create(name="ops", url=receiver.url())
    sync_queue(
        alert,
        "k",
        "backup_failed",
        "Backup <!channel> failed",
        "<https://evil.example|click> & <script>",
    )
    text = receiver.bodies[0]["text"]
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and "&lt;script&gt;" in text and " &amp; " in text


def test_prune_drops_old_recovered_alerts_only(db):
    from incidents.models import Alert

    old = timezone.now() - timedelta(days=200)
    Alert.objects.create(key="old", kind="backup_failed", title="t", opened=old, recovered=old)
    Alert.objects.create(key="open-old", kind="backup_failed", title="t", opened=old)
    Alert.objects.create(key="new", kind="backup_failed", title="t", recovered=timezone.now())
    tasks.prune_notifications()
    assert sorted(Alert.objects.values_list("key", flat=True)) == ["new", "open-old"]
