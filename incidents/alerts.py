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

What keeps alerts switched on (docs/incidents.md#acknowledge-snooze-maintenance):
- an open alert nobody acknowledged is sent again every DR_ALERT_REPEAT_S (remind());
- acknowledge (until it recovers) or snooze (until a time) stops those reminders; an alert
  that gets worse (a partial backup job now fails) or whose snooze ends is sent again;
- during a maintenance window of its system an alert is recorded, not sent; if it is still
  open when the window ends, it is sent then.
"""

import logging
import os
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from dr_portal.lib.queue import enqueue
from incidents.maintenance import in_maintenance, system_for_key, systems_in_maintenance
from incidents.models import Alert, Channel, Contact, Notification, OnCall, Webhook

log = logging.getLogger(__name__)

KINDS = {
    "backup_failed": "Backup failed",
    "backup_partial": "Backup partial",
    "rpo_breached": "RPO target breached",
    "wal_gap": "WAL gap in the archive",
    "replication_lag": "Standby replication lag",
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
# Conditions of one key that can get worse: the same job going from unusual to partly
# failing to failing sends the alert again, even when acknowledged or snoozed.
SEVERITY = {"backup_anomaly": 1, "backup_partial": 2, "backup_failed": 3}


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
                key=key,
                kind=kind,
                title=title,
                detail=detail,
                url=url,
                event=True,
                recovered=now,
                system_id=system_for_key(key),
                notify=contacts is not None,
            )
            if contacts is not None:
                _send(obj, "event", contacts, now)
            return
        updated = Alert.objects.filter(key=key, recovered__isnull=True).update(
            last_seen=now, seen_count=_plus_one(), detail=detail
        )
        if updated:
            _worse(key, kind, title, now)
            return
        try:
            with transaction.atomic():
                obj = Alert.objects.create(
                    key=key,
                    kind=kind,
                    title=title,
                    detail=detail,
                    url=url,
                    system_id=system_for_key(key),
                    notify=contacts is not None,
                )
        except IntegrityError:
            return  # a concurrent caller opened it first; it sends the message
        if contacts is not None:
            _send(obj, "alert", contacts, now)


def _worse(key, kind, title, now):
    """The open alert of `key` moves to a more severe kind: lift its silence, send it again."""
    milder = [k for k, level in SEVERITY.items() if level < SEVERITY.get(kind, 0)]
    if not milder:
        return
    rows = Alert.objects.filter(key=key, recovered__isnull=True, kind__in=milder)
    if rows.update(kind=kind, title=title, **UNSILENCED):
        obj = Alert.objects.get(key=key, recovered__isnull=True)
        if obj.notify:
            _send(obj, "worse", (), now)


UNSILENCED = {
    "silenced_at": None,
    "silenced_by": None,
    "silenced_until": None,
    "silence_reason": "",
}


def _send(obj, message, contacts, now, title=""):
    """Queue the messages unless the alert's system is in maintenance (then it waits)."""
    if in_maintenance(obj.system_id, now):
        return False
    _queue_messages(obj, message, contacts, title=title)
    Alert.objects.filter(pk=obj.pk).update(last_notified=now)
    obj.last_notified = now
    return True


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
        # Nobody was told (recorded only, or held by maintenance): nobody needs the all-clear.
        if obj.notify and obj.last_notified is not None:
            _send(obj, "recovered", (), now, title=_one_line(title))


def remind(now=None) -> int:
    """Every minute: send what is due. A snooze that ended lifts; an alert held by a
    maintenance window that is over goes out; an open alert nobody acknowledged is sent
    again every DR_ALERT_REPEAT_S (0: never). Returns how many alerts were sent."""
    now = now or timezone.now()
    ended = Alert.objects.filter(
        recovered__isnull=True, silenced_until__isnull=False, silenced_until__lte=now
    )
    snooze_ended = list(ended.values_list("pk", flat=True))
    ended.update(**UNSILENCED)
    repeat = getattr(settings, "DR_ALERT_REPEAT_S", 0)
    due = Q(last_notified__isnull=True) | Q(pk__in=snooze_ended)
    if repeat:
        due |= Q(last_notified__lte=now - timedelta(seconds=repeat))
    held = systems_in_maintenance(now)
    sent = 0
    candidates = Alert.objects.filter(
        due, recovered__isnull=True, event=False, notify=True, silenced_at__isnull=True
    )
    for obj in candidates.exclude(system_id__in=held)[:200]:
        message = "alert" if obj.last_notified is None else "reminder"
        with transaction.atomic():
            # Of two sweeps at once only one sends: the row must still be as it was read.
            claimed = Alert.objects.filter(
                pk=obj.pk, last_notified=obj.last_notified, silenced_at__isnull=True
            ).update(last_notified=now)
            if claimed:
                _queue_messages(obj, message, ())
                sent += 1
    return sent


def silence(obj: Alert, user, reason: str, until=None) -> None:
    """Acknowledge (until=None: until it recovers) or snooze (until a time): no reminders."""
    now = timezone.now()
    Alert.objects.filter(pk=obj.pk, recovered__isnull=True).update(
        silenced_at=now, silenced_by=user, silenced_until=until, silence_reason=reason[:300]
    )
    obj.refresh_from_db()


def unsilence(obj: Alert) -> None:
    Alert.objects.filter(pk=obj.pk).update(**UNSILENCED)
    obj.refresh_from_db()


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


def absolute_url(url: str) -> str:
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
    elif message in ("reminder", "worse"):
        subject = f"{'Still open' if message == 'reminder' else 'Worse'}: {obj.title}"
        lines = [subject, "", f"Kind: {label}", f"Open since {obj.opened:%Y-%m-%d %H:%M} UTC"]
        lines.append(f"Seen {obj.seen_count} time(s), last at {obj.last_seen:%Y-%m-%d %H:%M} UTC.")
        lines.append("Acknowledge or snooze it on the alerts page to stop the reminders.")
        if obj.detail:
            lines += ["", obj.detail.strip()]
    else:
        subject = obj.title
        lines = [obj.title, "", f"Kind: {label}", f"At: {obj.opened:%Y-%m-%d %H:%M:%S} UTC"]
        if obj.detail:
            lines += ["", obj.detail.strip()]
    if obj.url:
        lines += ["", absolute_url(obj.url)]
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
