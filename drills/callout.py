"""Call-out scenarios: notify each participant with a personal, signed acknowledgement link.

Messages go through the incidents app's notification outbox (Notification rows delivered by
incidents.tasks.deliver_notification, with its retries), one per participant and channel,
because each body carries that person's own link. The link is signed (django.core.signing)
and names only the acknowledgement row, so it works without a portal account.
"""

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from dr_portal.lib.queue import enqueue
from drills.journal import event
from drills.models import CalloutAck
from incidents.models import Alert, Channel, Notification

SALT = "drills.callout.ack"
LINK_VALID_FOR = 7 * 24 * 3600  # seconds: a call-out link older than a week is refused


def make_token(ack: CalloutAck) -> str:
    return signing.dumps({"ack": ack.pk, "run": ack.scenario_run_id}, salt=SALT, compress=True)


def read_token(token: str) -> CalloutAck | None:
    """The acknowledgement row the token names; None when forged, altered or expired."""
    try:
        data = signing.loads(token, salt=SALT, max_age=LINK_VALID_FOR)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    return (
        CalloutAck.objects.select_related("scenario_run__drill")
        .filter(pk=data.get("ack"), scenario_run_id=data.get("run"))
        .first()
    )


def ack_url(ack: CalloutAck) -> str:
    path = reverse("drills:ack", args=[make_token(ack)])
    base = getattr(settings, "DR_PORTAL_URL", "") or ""
    return base.rstrip("/") + path if base else path


def send(srun) -> list[CalloutAck]:
    """One CalloutAck per participant and their messages, queued after commit."""
    drill = srun.drill
    now = timezone.now()
    participants = list(drill.plan.participants.all())
    subject = f"[DR Portal] Drill call-out: {drill.plan_name} — please acknowledge"
    with transaction.atomic():
        alert = Alert.objects.create(
            key=f"drill:{drill.pk}:callout:{srun.pk}",
            kind="drill_callout",
            title=f"Drill call-out: {drill.plan_name}",
            detail=srun.instructions,
            url=drill.get_absolute_url(),
            event=True,
            recovered=now,
        )
        acks = []
        for contact in participants:
            ack, _ = CalloutAck.objects.get_or_create(
                scenario_run=srun,
                contact=contact,
                defaults={"contact_name": f"{contact.name} ({contact.role})", "notified_at": now},
            )
            body = "\n".join(
                [
                    f"Hello {contact.name},",
                    "",
                    f"This is a call-out test of the drill “{drill.plan_name}” "
                    f"(scenario “{srun.title}”).",
                    srun.instructions.strip(),
                    "",
                    "Please acknowledge by opening this link:",
                    ack_url(ack),
                    "",
                    "-- DR Portal",
                ]
            )
            channels = []
            rows = []
            if contact.email:
                channels.append("email")
                rows.append(Notification(channel=Channel.EMAIL, recipient=contact.email))
            if contact.webhook_url:
                channels.append("webhook")
                rows.append(
                    Notification(channel=Channel.WEBHOOK, recipient=f"webhook of {contact.name}")
                )
            for row in rows:
                row.alert, row.message, row.contact = alert, "event", contact
                row.subject, row.body = subject[:300], body
                row.save()
                enqueue("incidents.tasks.deliver_notification", row.pk, group="notifications")
            CalloutAck.objects.filter(pk=ack.pk).update(
                channels=", ".join(channels) or "none (portal tick only)"
            )
            acks.append(ack)
    names = ", ".join(a.contact_name for a in acks) or "nobody"
    event(drill, f"Call-out sent to {names}", None, srun)
    return acks
