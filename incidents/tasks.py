"""django-q2 entry points: deliver notifications (with retries), raise follow-up alerts."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse
from django.utils import timezone

from backups.models import Source
from dr_portal.lib import outbound
from dr_portal.lib.durations import format_duration
from dr_portal.lib.redact import redact
from incidents import formats, grace
from incidents.alerts import absolute_url, alert, recover, remind
from incidents.events import process_events
from incidents.formats import slack_escape  # noqa: F401 (kept importable from here)
from incidents.models import (
    Alert,
    Delivery,
    DeliveryAttempt,
    FollowUp,
    Notification,
    WebhookKind,
)
from recovery.readiness import BREACHED, source_readiness

log = logging.getLogger(__name__)

# Wait before attempt n+1 after n failures; after the last one the message is given up.
BACKOFF = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
]
MAX_ATTEMPTS = len(BACKOFF) + 1
WEBHOOK_TIMEOUT = 10
# A "sending" row older than this lost its worker mid-delivery: try it again.
SENDING_LEASE = timedelta(minutes=10)


class DeliveryError(Exception):
    pass


def deliver_notification(notification_id: int) -> str:
    """Try one delivery; record the attempt; schedule a retry on failure. Never raises."""
    now = timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status__in=[Delivery.PENDING, Delivery.RETRY], next_attempt__lte=now
    ).update(status=Delivery.SENDING, next_attempt=now + SENDING_LEASE)
    if not claimed:
        return "not due"  # delivered already, given up, or another worker has it
    note = Notification.objects.select_related("contact", "webhook", "alert", "alert__system").get(
        pk=notification_id
    )
    attempt = note.attempts + 1
    secrets = []
    try:
        if note.channel == "email":
            _send_email(note)
        else:
            url, kind, api_key = _webhook_target(note)
            secrets.extend(v for v in (url, api_key) if v)
            _post_webhook(url, note, kind=kind, api_key=api_key)
    except Exception as exc:  # any failure of the channel is recorded, never raised
        detail = redact(f"{type(exc).__name__}: {exc}", secrets)[:500]
        give_up = attempt >= MAX_ATTEMPTS or isinstance(exc, NotConfigured)
        Notification.objects.filter(pk=note.pk).update(
            attempts=attempt,
            last_error=detail,
            status=Delivery.FAILED if give_up else Delivery.RETRY,
            next_attempt=now if give_up else now + BACKOFF[attempt - 1],
        )
        DeliveryAttempt.objects.create(notification=note, ok=False, detail=detail)
        log.warning(
            "notification %s to %s failed (attempt %s): %s",
            note.pk,
            note.recipient,
            attempt,
            detail,
        )
        return "failed" if give_up else "retry"
    Notification.objects.filter(pk=note.pk).update(
        attempts=attempt, status=Delivery.SENT, sent=timezone.now(), last_error=""
    )
    DeliveryAttempt.objects.create(notification=note, ok=True, detail="delivered")
    return "sent"


class NotConfigured(DeliveryError):
    pass


def _send_email(note):
    message = EmailMessage(
        subject=note.subject.replace("\n", " "),
        body=note.body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[note.recipient],
    )
    message.send(fail_silently=False)


def _webhook_target(note) -> tuple[str, str, str]:
    """(URL, format, API key) of the notification's webhook, revealed for this delivery only."""
    kind, api_key = WebhookKind.GENERIC, ""
    if note.webhook_id:
        secret = note.webhook.url
        kind = note.webhook.kind
        if kind != WebhookKind.GENERIC:
            api_key = note.webhook.api_key.reveal() if note.webhook.api_key else ""
            if not api_key:
                raise NotConfigured(f"the {note.webhook.get_kind_display()} key was removed")
    elif note.contact_id:
        secret = note.contact.webhook_url
    else:
        secret = None
    if not secret:
        raise NotConfigured("the webhook URL was removed")
    return secret.reveal(), kind, api_key


def _post_webhook(url: str, note, *, kind=WebhookKind.GENERIC, api_key=""):
    """POST through the outbound guard: internal addresses refused, a redirect is not followed."""
    request = formats.outgoing(
        note, url, kind=kind, api_key=api_key, link=absolute_url(note.alert.url)
    )
    try:
        response = outbound.request(
            "POST",
            request.url,
            body=request.body,
            headers=request.headers,
            timeout=WEBHOOK_TIMEOUT,
            max_body=0,
        )
    except outbound.Refused as exc:
        # The address will not become public by waiting: no retries.
        raise NotConfigured(f"webhook {exc}") from None
    except OSError as exc:
        raise DeliveryError(f"webhook unreachable: {exc}") from None
    if 300 <= response.status < 400:
        raise DeliveryError(f"webhook answered HTTP {response.status}, a redirect (not followed)")
    if not 200 <= response.status < 300:
        raise DeliveryError(f"webhook answered HTTP {response.status}")


def retry_due_notifications() -> int:
    """Every minute: deliver messages whose retry time has come (and lost "sending" leases)."""
    now = timezone.now()
    # A worker that died while sending leaves the row "sending" past its lease.
    Notification.objects.filter(status=Delivery.SENDING, next_attempt__lte=now).update(
        status=Delivery.RETRY
    )
    due = list(
        Notification.objects.filter(
            status__in=[Delivery.PENDING, Delivery.RETRY], next_attempt__lte=now
        ).values_list("pk", flat=True)[:200]
    )
    for pk in due:
        deliver_notification(pk)
    return len(due)


def check_overdue_followups() -> int:
    """Daily: one alert per overdue follow-up (to on-call and its owner); done items recover."""
    overdue = list(FollowUp.objects.overdue().select_related("owner_contact", "content_type"))
    for item in overdue:
        source = item.source
        url = source.get_absolute_url() if hasattr(source, "get_absolute_url") else ""
        owner = f"Owner: {item.owner_name}\n" if item.owner_name else ""
        alert(
            item.alert_key(),
            "followup_overdue",
            f"Follow-up overdue since {item.due:%Y-%m-%d}: {item.text}"[:300],
            detail=f"{owner}From: {source if source is not None else 'a deleted record'}",
            url=url,
            contacts=[item.owner_contact] if item.owner_contact_id else (),
        )
    # Items done (or re-dated, or deleted) since their alert opened: send the one recovery.
    open_keys = Alert.objects.filter(kind="followup_overdue", recovered__isnull=True).values_list(
        "key", flat=True
    )
    still = {item.alert_key() for item in overdue}
    for key in open_keys:
        if key not in still:
            recover(key)
    return len(overdue)


def prune_notifications(days: int = 180) -> int:
    """Daily: drop recovered alerts and events older than `days` with their notifications."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = Alert.objects.filter(recovered__lt=cutoff).delete()
    return deleted


def check_rpo_targets() -> int:
    """Raise an rpo_breached alert per source whose RPO is over its target; recover the rest.

    RPO is readiness's "RPO now": for a point-in-time recovery source the age of its newest
    archived WAL, so an archive older than the target raises this alert too. A WAL gap in a
    PITR source's archive raises its own alert (check_wal_gap)."""
    breached = 0
    sources = list(Source.objects.all())
    quiet = grace.sources_in_grace(sources, timezone.now())
    for source_id, r in source_readiness(sources).items():
        key = f"rpo:{source_id}"
        if source_id in quiet:
            continue  # new: no job yet, or its first backup has not had its chance
        if r.rpo_state == BREACHED:
            breached += 1
            age = format_duration(r.rpo_now) if r.rpo_now is not None else "no good backup"
            alert(
                key,
                "rpo_breached",
                f"RPO of {r.source_name} breached: {age} (target {format_duration(r.rpo_target)})",
                detail="; ".join(r.reasons),
                url=reverse("recovery:source_detail", args=[source_id]),
            )
        else:
            recover(key, title=f"RPO of {r.source_name} back within its target")
        if r.pitr:
            check_wal_gap(r)
    grace.close_orphaned_alerts()
    return breached


def check_wal_gap(r) -> None:
    """Alert while a PITR source's archive misses a segment; recover once it is whole again.

    A window that could not be read says nothing about the gap: the alert is left as it is."""
    if r.window_error:
        return
    key = f"wal_gap:{r.source_id}"
    if r.wal_gap:
        alert(
            key,
            "wal_gap",
            f"WAL gap in the archive of {r.source_name}: segment {r.missing_segment} is missing",
            detail=(
                f"The archive holds no {r.missing_segment}: a restore cannot replay past "
                f"{r.gap_after or 'the segment before it'}. Check archive_command and the "
                "PostgreSQL log of the source, then take a new full backup."
            ),
            url=reverse("backups:source_detail", args=[r.source_id]),
        )
    else:
        recover(key, title=f"WAL archive of {r.source_name} has no gap any more")


def remind_alerts() -> int:
    """Every minute: snoozes that ended, alerts held by a finished maintenance window, and
    reminders of open alerts nobody acknowledged (incidents.alerts.remind)."""
    return remind()


def process_run_events() -> int:
    """Every minute: the safety net behind the after-commit enqueue of incidents.events."""
    return process_events()
