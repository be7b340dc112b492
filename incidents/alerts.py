"""Raise and clear alerts from anywhere in the portal; delivery happens in tasks.

    from incidents.alerts import alert, recover
    alert("backup:job:3", "backup_failed", "Backup job nightly failed", detail=run.error, url=...)
    recover("backup:job:3")

A condition key has at most one open alert: raising it again while open only counts it
(no storm when a job fails every hour). recover() closes it and sends exactly one
"recovered" message; recovering a key with no open alert does nothing. Event kinds
(failover_started, failover_finished) are sent once per key and never recover.

Neither function ever raises into its caller and neither sends anything inline: they
record Alert and Notification rows and enqueue incidents.tasks.deliver_notification
after the caller's transaction commits.
"""

import logging
import os

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dr_portal.lib.queue import enqueue
from incidents.models import Alert, Channel, Contact, Notification, OnCall, Webhook

log = logging.getLogger(__name__)

KINDS = {
    "backup_failed": "Backup failed",
    "backup_partial": "Backup partial",
    "rpo_breached": "RPO target breached",
    "wal_gap": "WAL gap in the archive",
    "restore_test_failed": "Restore test failed",
    "copy_lost": "Backup copy lost",
    "drill_overdue": "Drill overdue",
    "failover_started": "Failover started",
    "failover_finished": "Failover finished",
    "followup_overdue": "Follow-up overdue",
    "drill_callout": "Drill call-out",
    "test": "Test notification",
}
EVENT_KINDS = {"failover_started", "failover_finished", "test"}


def alert(
    key: str,
    kind: str,
    title: str,
    detail: str = "",
    url: str = "",
    *,
    contacts=(),
    strict=False,
    notify=True,
) -> None:
    """Open the alert for `key` and notify the on-call contacts (and `contacts`), once.

    strict: let a failure raise (the run-event consumer retries the event) instead of logging it.
    notify=False: record it (alerts page, digest) without sending anything, e.g. a test run.
    """
    try:
        _alert(key, kind, title, detail, url, contacts if notify else None)
    except Exception:
        if strict:
            raise
        log.exception("could not record alert %s (%s)", key, kind)


def recover(key: str, title: str = "", *, strict=False) -> None:
    """Close the open alert for `key` and send one "recovered" message; no-op if none is open."""
    try:
        _recover(key, title)
    except Exception:
        if strict:
            raise
        log.exception("could not record recovery of %s", key)


def _alert(key, kind, title, detail, url, contacts):
    key, title = str(key)[:200], _one_line(title)[:300] or KINDS.get(kind, kind)
    now = timezone.now()
    event = kind in EVENT_KINDS
    with transaction.atomic():
        if event:
            if Alert.objects.filter(key=key, kind=kind).exists():
                return  # an event is sent once, even if the task raising it runs twice
            obj = Alert.objects.create(
                key=key, kind=kind, title=title, detail=detail, url=url, event=True, recovered=now
            )
            if contacts is not None:
                _queue_messages(obj, "event", contacts)
            return
        updated = Alert.objects.filter(key=key, recovered__isnull=True).update(
            last_seen=now, seen_count=_plus_one(), detail=detail
        )
        if updated:
            return
        try:
            with transaction.atomic():
                obj = Alert.objects.create(key=key, kind=kind, title=title, detail=detail, url=url)
        except IntegrityError:
            return  # a concurrent caller opened it first; it sends the message
        if contacts is not None:
            _queue_messages(obj, "alert", contacts)


def _recover(key, title):
    now = timezone.now()
    with transaction.atomic():
        obj = Alert.objects.filter(key=str(key)[:200], recovered__isnull=True, event=False).first()
        if obj is None:
            return
        # Conditional update: of two concurrent recoveries, only one sends the message.
        if not Alert.objects.filter(pk=obj.pk, recovered__isnull=True).update(recovered=now):
            return
        obj.recovered = now
        _queue_messages(obj, "recovered", (), title=_one_line(title))


def _plus_one():
    return F("seen_count") + 1


def _one_line(text: str) -> str:
    return " ".join(str(text or "").split())


def recipients(extra_contacts=()):
    """On-call contacts with an email or a webhook, then active global webhooks."""
    contacts = list(
        Contact.objects.exclude(on_call=OnCall.NONE).order_by("role", "on_call", "name")
    )
    seen = {c.pk for c in contacts}
    for extra in extra_contacts:
        if extra is not None and extra.pk not in seen:
            contacts.append(extra)
            seen.add(extra.pk)
    return contacts, list(Webhook.objects.filter(active=True))


def _absolute(url: str) -> str:
    base = getattr(settings, "DR_PORTAL_URL", "") or os.environ.get("DR_PORTAL_URL", "")
    if url.startswith("/") and base:
        return base.rstrip("/") + url
    return url


def compose(obj, message: str, title: str = "") -> tuple[str, str]:
    """Subject and plain-text body: nothing here is ever rendered as HTML."""
    label = KINDS.get(obj.kind, obj.kind.replace("_", " ").capitalize())
    if message == "recovered":
        subject = title or f"Recovered: {obj.title}"
        lines = [subject, "", f"The condition ({label}) has cleared."]
        lines.append(f"Open since {obj.opened:%Y-%m-%d %H:%M} UTC, seen {obj.seen_count} time(s).")
    else:
        subject = obj.title
        lines = [obj.title, "", f"Kind: {label}", f"At: {obj.opened:%Y-%m-%d %H:%M:%S} UTC"]
        if obj.detail:
            lines += ["", obj.detail.strip()]
    if obj.url:
        lines += ["", _absolute(obj.url)]
    lines += ["", f"-- DR Portal (alert key {obj.key})"]
    return f"[DR Portal] {subject}"[:300], "\n".join(lines)


def _queue_messages(obj, message, extra_contacts, title=""):
    subject, body = compose(obj, message, title)
    contacts, webhooks = recipients(extra_contacts)
    rows, emails = [], set()
    for contact in contacts:
        common = dict(alert=obj, message=message, contact=contact, subject=subject, body=body)
        if contact.email and contact.email.lower() not in emails:  # one person in two roles
            emails.add(contact.email.lower())
            rows.append(Notification(channel=Channel.EMAIL, recipient=contact.email, **common))
        if contact.webhook_url:
            rows.append(
                Notification(
                    channel=Channel.WEBHOOK, recipient=f"webhook of {contact.name}", **common
                )
            )
    for hook in webhooks:
        rows.append(
            Notification(
                alert=obj,
                message=message,
                channel=Channel.WEBHOOK,
                webhook=hook,
                recipient=f"webhook {hook.name}",
                subject=subject,
                body=body,
            )
        )
    if not rows:
        log.warning("alert %s (%s): no on-call contact or webhook to notify", obj.key, message)
        return
    for row in rows:
        row.save()
        enqueue("incidents.tasks.deliver_notification", row.pk, group="notifications")
