"""Incidents, their timeline and follow-ups; the contacts directory; alerts and their notifications."""

from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from dr_portal.fields import EncryptedTextField
from dr_portal.lib.text import LONG_TEXT, validate_phone, validate_single_line

# --- Contacts ---------------------------------------------------------------

# Roles the seed's "Key Contacts" table names; any other role text is allowed too.
COMMON_ROLES = ["On-Call", "DBA", "Infrastructure", "Manager"]


class OnCall(models.TextChoices):
    NONE = "", "Not on call"
    PRIMARY = "primary", "Primary"
    SECONDARY = "secondary", "Secondary"


class Contact(models.Model):
    """A person from the key contacts table; on-call ones receive notifications."""

    role = models.CharField(
        max_length=60, help_text="On-Call, DBA, Infrastructure, Manager or any other."
    )
    name = models.CharField(max_length=120, validators=[validate_single_line])
    phone = models.CharField(max_length=40, blank=True, validators=[validate_phone])
    email = models.EmailField(blank=True)
    notes = models.TextField(
        blank=True, max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)]
    )
    on_call = models.CharField(
        max_length=10, choices=OnCall.choices, default=OnCall.NONE, blank=True
    )
    webhook_url = EncryptedTextField(
        help_text="Optional Slack-compatible incoming webhook for this person (kept encrypted)."
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["role", "on_call", "name"]
        constraints = [
            # One primary and one secondary per role: the pager knows whom to call first.
            models.UniqueConstraint(
                fields=["role", "on_call"], condition=~Q(on_call=""), name="contact_one_oncall_slot"
            ),
            models.UniqueConstraint(fields=["role", "name"], name="contact_role_name_unique"),
        ]
        indexes = [
            # Notification recipients: on-call contacts.
            models.Index(fields=["on_call"], name="contact_oncall_idx"),
        ]

    def __str__(self):
        slot = f" ({self.get_on_call_display().lower()} on-call)" if self.on_call else ""
        return f"{self.role}: {self.name}{slot}"


def seed_order(contacts) -> list:
    """The seed's table order: On-Call, DBA, Infrastructure, Manager, then other roles; primary first."""
    ranks = {r.lower(): i for i, r in enumerate(COMMON_ROLES)}
    slots = {OnCall.PRIMARY: 0, OnCall.SECONDARY: 1}
    return sorted(
        contacts,
        key=lambda c: (
            ranks.get(c.role.lower(), len(ranks)),
            c.role.lower(),
            slots.get(c.on_call, 2),
            c.name,
        ),
    )


class WebhookKind(models.TextChoices):
    """The payload a global webhook receives (incidents/formats.py)."""

    GENERIC = "generic", 'Slack-compatible JSON {"text": …}'
    PAGERDUTY = "pagerduty", "PagerDuty Events API v2"
    OPSGENIE = "opsgenie", "Opsgenie Alert API"


class Webhook(models.Model):
    """A global webhook that receives every alert: Slack-compatible, PagerDuty or Opsgenie."""

    name = models.CharField(max_length=80, unique=True, validators=[validate_single_line])
    kind = models.CharField(max_length=10, choices=WebhookKind.choices, default=WebhookKind.GENERIC)
    url = EncryptedTextField(help_text="Incoming webhook URL (kept encrypted, never shown back).")
    # PagerDuty: the integration's routing key (in the body); Opsgenie: the API key (header).
    api_key = EncryptedTextField(
        help_text="PagerDuty routing key or Opsgenie API key (kept encrypted, never shown back)."
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# --- Incidents -----------------------------------------------------------------


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 critical"
    SEV2 = "sev2", "SEV2 major"
    SEV3 = "sev3", "SEV3 minor"
    SEV4 = "sev4", "SEV4 low"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class IncidentSequence(models.Model):
    """The last incident number handed out in a year (INC-YYYY-NNN)."""

    year = models.PositiveIntegerField(primary_key=True)
    last = models.PositiveIntegerField(default=0)

    audit = False

    def __str__(self):
        return f"{self.year}: {self.last}"

    @classmethod
    def next_number(cls, year: int) -> int:
        """Race-safe: the UPDATE locks the year's row until the surrounding transaction ends."""
        with transaction.atomic():
            if not cls.objects.filter(year=year).update(last=F("last") + 1):
                try:
                    with transaction.atomic():
                        cls.objects.create(year=year, last=1)
                    return 1
                except IntegrityError:  # another creator won; take the next number
                    cls.objects.filter(year=year).update(last=F("last") + 1)
            return cls.objects.get(year=year).last


class Incident(models.Model):
    """One disaster-recovery event written up in the seed's incident report shape."""

    identifier = models.CharField(max_length=20, unique=True, editable=False)
    year = models.PositiveIntegerField(editable=False)
    number = models.PositiveIntegerField(editable=False)
    title = models.CharField(max_length=200, validators=[validate_single_line])
    summary = models.CharField(max_length=300, blank=True, help_text="One line.")
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.SEV2)
    status = models.CharField(
        max_length=10, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the failure began (if known)."
    )
    detected_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    root_cause = models.TextField(
        blank=True, max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)]
    )
    users_affected = models.PositiveIntegerField(null=True, blank=True)
    data_loss = models.CharField(
        max_length=200, blank=True, help_text='For example "0" or "15 min of executions".'
    )
    services_down = models.CharField(max_length=200, blank=True)
    recovery_actions = models.TextField(
        blank=True,
        max_length=LONG_TEXT,
        validators=[MaxLengthValidator(LONG_TEXT)],
        help_text="One action per line, in order.",
    )
    preventive_measures = models.TextField(
        blank=True,
        max_length=LONG_TEXT,
        validators=[MaxLengthValidator(LONG_TEXT)],
        help_text="One measure per line.",
    )
    lessons_learned = models.TextField(
        blank=True, max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)]
    )
    # Deleting an incident deletes its follow-ups (they are generic, so say it here).
    followup_items = GenericRelation("FollowUp")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-detected_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["year", "number"], name="incident_year_number_unique"),
        ]
        indexes = [
            # The incident list filtered by status, newest first.
            models.Index(fields=["status", "-detected_at"], name="incident_status_idx"),
        ]

    def __str__(self):
        return f"{self.identifier} {self.title}"

    def save(self, *args, **kwargs):
        if not self.identifier:
            with transaction.atomic():
                self.year = (self.detected_at or timezone.now()).year
                self.number = IncidentSequence.next_number(self.year)
                self.identifier = f"INC-{self.year}-{self.number:03d}"
                return super().save(*args, **kwargs)
        return super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("incidents:detail", args=[self.identifier])

    def clean(self):
        errors = {}
        if not (self.title or "").strip():
            errors["title"] = "Give the incident a title."
        if self.resolved_at and self.detected_at and self.resolved_at < self.detected_at:
            errors["resolved_at"] = "Resolved time is before the detected time."
        if self.resolved_at and self.started_at and self.resolved_at < self.started_at:
            errors["resolved_at"] = "Resolved time is before the start time."
        if self.started_at and self.detected_at and self.detected_at < self.started_at:
            errors["detected_at"] = "Detected time is before the start time."
        if self.status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED) and not self.resolved_at:
            errors["resolved_at"] = "A resolved or closed incident needs its resolved time."
        if errors:
            raise ValidationError(errors)

    # --- transitions ---------------------------------------------------------
    def move_to(self, status: str, *, by=None, note: str = "") -> bool:
        """Move to `status` and write the change on the timeline; False if already there.

        Resolving or closing stamps the resolved time (unless one is set); reopening clears
        it. Validates first (ValidationError, nothing saved), then saves every field, so an
        edit form's other changes are saved with the move.
        """
        status = IncidentStatus(status)  # ValueError for a status that does not exist
        old = IncidentStatus(self.status)
        if status == old:
            return False
        kept = self.status, self.resolved_at
        self.status = status
        if status in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED) and not self.resolved_at:
            self.resolved_at = timezone.now()
        if status == IncidentStatus.OPEN:
            self.resolved_at = None
        try:
            self.full_clean()
        except ValidationError:
            self.status, self.resolved_at = kept
            raise
        text = f"Status: {old.label} → {status.label}" + (f" ({note})" if note else "")
        with transaction.atomic():
            self.save()
            TimelineEntry.objects.create(
                incident=self,
                text=text,
                author=by,
                author_name=by.get_username() if by else "",
                automatic=True,
            )
        return True

    # --- derived -------------------------------------------------------------
    @property
    def began_at(self):
        return self.started_at or self.detected_at

    @property
    def duration(self):
        """Total downtime: from start (or detection) to resolution; None while unresolved."""
        if not self.resolved_at or not self.began_at:
            return None
        return self.resolved_at - self.began_at

    @property
    def time_to_detect(self):
        if not self.started_at or not self.detected_at:
            return None
        return self.detected_at - self.started_at

    @property
    def recovery_action_list(self):
        return _lines(self.recovery_actions)

    @property
    def preventive_measure_list(self):
        return _lines(self.preventive_measures)

    def followups(self):
        return FollowUp.objects.for_object(self)


def _lines(text: str) -> list[str]:
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        # Accept pasted lists ("1. x", "- x") without doubling their numbers.
        for prefix in ("- ", "* "):
            if line.startswith(prefix):
                line = line[len(prefix) :]
        head, dot, rest = line.partition(". ")
        if dot and head.isdigit():
            line = rest
        if line:
            out.append(line)
    return out


class TimelineEntry(models.Model):
    """One line of an incident's timeline; auto entries come from linked runs."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now)
    text = models.TextField(max_length=LONG_TEXT, validators=[MaxLengthValidator(LONG_TEXT)])
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, blank=True)
    automatic = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name_plural = "timeline entries"
        indexes = [
            # An incident's timeline in time order.
            models.Index(fields=["incident", "at"], name="timeline_incident_at_idx"),
        ]

    def __str__(self):
        return f"{self.at:%H:%M} {self.text[:60]}"


class FollowUpQuerySet(models.QuerySet):
    def for_object(self, obj):
        ct = ContentType.objects.get_for_model(obj)
        return self.filter(content_type=ct, object_id=obj.pk)

    def open(self):
        return self.filter(done=False)

    def overdue(self, today=None):
        today = today or timezone.localdate()
        return self.filter(done=False, due__lt=today)


class FollowUp(models.Model):
    """An action item from an incident or a drill run: text, owner, due date, done."""

    text = models.CharField(max_length=300)
    owner_contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="followups"
    )
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due = models.DateField(null=True, blank=True)
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    source = GenericForeignKey("content_type", "object_id")
    created = models.DateTimeField(default=timezone.now)

    objects = FollowUpQuerySet.as_manager()

    class Meta:
        ordering = ["done", "due", "pk"]
        indexes = [
            # The follow-ups of one incident or drill run.
            models.Index(fields=["content_type", "object_id"], name="followup_source_idx"),
            # The overdue list: open items by due date.
            models.Index(fields=["done", "due"], name="followup_open_due_idx"),
        ]

    def __str__(self):
        return self.text

    @property
    def owner_name(self):
        if self.owner_contact_id:
            return self.owner_contact.name
        if self.owner_user_id:
            return self.owner_user.get_full_name() or self.owner_user.get_username()
        return ""

    @property
    def is_overdue(self):
        return not self.done and self.due is not None and self.due < timezone.localdate()

    def alert_key(self):
        return f"followup:{self.pk}:overdue"


class IncidentLink(models.Model):
    """An incident's link to a backup run, restore, failover run or drill involved."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="links")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveBigIntegerField()
    target = GenericForeignKey("content_type", "object_id")
    note = models.CharField(max_length=200, blank=True)
    last_status = models.CharField(max_length=20, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "content_type", "object_id"], name="incident_link_unique"
            ),
        ]
        indexes = [
            # A run finishing looks up the incidents linked to it.
            models.Index(fields=["content_type", "object_id"], name="incident_link_target_idx"),
        ]

    def __str__(self):
        return f"{self.incident.identifier} → {self.content_type.model} #{self.object_id}"


# --- Alerts and notifications ------------------------------------------------------


class Alert(models.Model):
    """A condition (open until recovered) or an event; its messages are Notifications."""

    key = models.CharField(max_length=200)
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    event = models.BooleanField(default=False, help_text="Sent once; never recovers.")
    opened = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    seen_count = models.PositiveIntegerField(default=1)
    recovered = models.DateTimeField(null=True, blank=True)
    # The system its source, job or failover belongs to (maintenance windows hold its messages).
    system = models.ForeignKey(
        "backups.System", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notify = models.BooleanField(
        default=True, help_text="False: recorded only, never sent (a test-mode failover)."
    )
    last_notified = models.DateTimeField(
        null=True, blank=True, help_text="When its last alert, reminder or 'worse' went out."
    )
    # Acknowledged (until empty) or snoozed (until a time): no reminders meanwhile.
    silenced_at = models.DateTimeField(null=True, blank=True)
    silenced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    silenced_until = models.DateTimeField(null=True, blank=True)
    silence_reason = models.CharField(max_length=300, blank=True)

    audit = False  # the alert table is itself the history; ack and snooze are audited by views

    class Meta:
        ordering = ["-opened", "-pk"]
        constraints = [
            # One open alert per condition: this is what stops the storm.
            models.UniqueConstraint(
                fields=["key"], condition=Q(recovered__isnull=True), name="alert_one_open_per_key"
            ),
        ]
        indexes = [
            # alert()/recover(): the open alert of a key; events: any alert of a key.
            models.Index(fields=["key", "recovered"], name="alert_key_idx"),
        ]

    def __str__(self):
        return f"{self.kind}: {self.title}"

    @property
    def is_open(self):
        return self.recovered is None and not self.event

    @property
    def silence(self) -> str:
        """'acknowledged', 'snoozed' or ''."""
        if self.silenced_at is None:
            return ""
        return "snoozed" if self.silenced_until else "acknowledged"


class MaintenanceQuerySet(models.QuerySet):
    def active_at(self, when):
        return self.filter(starts__lte=when, ends__gt=when)


class MaintenanceWindow(models.Model):
    """Planned work on a system: its alerts are recorded but not sent between start and end."""

    MAX_LENGTH = timedelta(days=14)

    system = models.ForeignKey(
        "backups.System", on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    starts = models.DateTimeField()
    ends = models.DateTimeField()
    reason = models.CharField(max_length=300, validators=[validate_single_line])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    objects = MaintenanceQuerySet.as_manager()

    class Meta:
        ordering = ["starts", "pk"]
        indexes = [
            # alerts: is this system in maintenance now? dashboard: windows not yet over
            models.Index(fields=["system", "ends"], name="maintenance_system_end_idx"),
        ]

    def __str__(self):
        return f"Maintenance of {self.system} {self.starts:%Y-%m-%d %H:%M}–{self.ends:%H:%M}"

    def clean(self):
        if self.starts and self.ends:
            if self.ends <= self.starts:
                raise ValidationError({"ends": "The window must end after it starts."})
            if self.ends - self.starts > self.MAX_LENGTH:
                raise ValidationError(
                    {"ends": "A maintenance window lasts at most 14 days; alerts would go unseen."}
                )

    def is_active(self, when=None) -> bool:
        when = when or timezone.now()
        return self.starts <= when < self.ends


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class Delivery(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRY = "retry", "Waiting to retry"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (gave up)"


class Notification(models.Model):
    """One message to one recipient over one channel, with every delivery attempt."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    message = models.CharField(max_length=10, default="alert")  # alert, recovered, event, test
    channel = models.CharField(max_length=10, choices=Channel.choices)
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL)
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.SET_NULL)
    recipient = models.CharField(
        max_length=200, help_text="Email address or webhook name; never a URL."
    )
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField(default=timezone.now)
    last_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    sent = models.DateTimeField(null=True, blank=True)

    audit = False

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [
            # The retry sweeper: due messages not yet delivered.
            models.Index(fields=["status", "next_attempt"], name="notification_due_idx"),
        ]

    def __str__(self):
        return f"{self.channel} to {self.recipient}: {self.subject}"


class DeliveryAttempt(models.Model):
    """One try at delivering a notification, and what happened."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    detail = models.CharField(max_length=500, blank=True)

    audit = False

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {'ok' if self.ok else 'failed'} {self.detail}"
