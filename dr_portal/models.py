"""Portal-wide records: the audit trail, settings confirmed by people, run events."""

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from dr_portal.audit_chain import GENESIS
from dr_portal.lib import keyring


class AuditEntry(models.Model):
    """One change or action: who, what, when, which object, from where."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    source = models.CharField(max_length=20)
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    detail = models.CharField(max_length=1000, blank=True)
    # The hash chain (dr_portal.audit_chain): position, the previous entry's hash, this one's.
    seq = models.PositiveBigIntegerField(null=True, unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    entry_hash = models.CharField(max_length=64, blank=True, editable=False)

    audit = False

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"
        indexes = [
            # The history of one object on its page.
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_idx"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.object_repr}"


class AuditChainHead(models.Model):
    """The last link of the audit chain (one row, pk 1): appends lock it to stay in line."""

    seq = models.PositiveBigIntegerField(default=0)
    entry_hash = models.CharField(max_length=64, default=GENESIS)
    entry_id = models.BigIntegerField(null=True, blank=True)

    audit = False

    def __str__(self):
        return f"audit chain head: #{self.seq} {self.entry_hash[:12]}"


class SignedReport(models.Model):
    """One signed report PDF as issued: its hash and detached Ed25519 signature, and by whom.

    The register of every compliance, incident and drill PDF the portal handed out; the
    signature is public (it proves, it does not grant), so it is kept to be downloaded again.
    """

    class Kind(models.TextChoices):
        COMPLIANCE = "compliance", "Compliance report"
        INCIDENT = "incident", "Incident report"
        DRILL = "drill", "Drill report"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    filename = models.CharField(max_length=200)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=40, blank=True)
    pdf_sha256 = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)  # hex of the 64 raw bytes
    key_fingerprint = models.CharField(max_length=64)
    produced_at = models.DateTimeField(default=timezone.now)
    produced_by = models.CharField(max_length=150)

    audit = False  # the export itself is audited, with the PDF's hash

    class Meta:
        ordering = ["-produced_at", "-pk"]
        indexes = [
            # verify_report: the signature of a PDF given only the file.
            models.Index(fields=["pdf_sha256"], name="signedreport_sha_idx"),
            # A report page's list of its signed PDFs, newest first.
            models.Index(
                fields=["kind", "object_type", "object_id", "-produced_at"],
                name="signedreport_object_idx",
            ),
        ]

    def __str__(self):
        return f"{self.filename} signed {self.produced_at:%Y-%m-%d %H:%M} by {self.produced_by}"

    @property
    def signature_bytes(self) -> bytes:
        return bytes.fromhex(self.signature)


class KeyEscrow(models.Model):
    """A manager's confirmation that a master key is stored away from the backups."""

    key_id = models.CharField(max_length=20, unique=True)
    confirmed_by = models.ForeignKey("auth.User", null=True, on_delete=models.SET_NULL)
    confirmed_at = models.DateTimeField(default=timezone.now)
    where = models.CharField(max_length=200, help_text="Where the key is kept (no key material).")

    def __str__(self):
        return f"key {self.key_id} escrowed: {self.where}"

    @classmethod
    def unconfirmed_key_ids(cls) -> list[str]:
        """Ids of master keys in the ring that no manager has confirmed as escrowed."""
        try:
            ids = [k.key_id for k in keyring.ring()]
        except keyring.KeyRingError:
            return []
        confirmed = set(cls.objects.filter(key_id__in=ids).values_list("key_id", flat=True))
        return [i for i in ids if i not in confirmed]


class RunEvent(models.Model):
    """One transition of a run (started, finished), written with it: history and outbox.

    Like healthchecks' Flip: the run's transition writes the row in its own transaction and
    nothing else; incidents.events.process_events() consumes it (notifications, anomaly
    checks, alerts, incident timeline entries), so no lower layer calls a higher one.
    """

    class Transition(models.TextChoices):
        STARTED = "started", "Started"
        FINISHED = "finished", "Finished"

    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.CASCADE, related_name="+"
    )
    object_id = models.BigIntegerField()
    transition = models.CharField(max_length=12, choices=Transition.choices)
    status = models.CharField(max_length=20, blank=True)
    at = models.DateTimeField(default=timezone.now)
    # A consumer holds the event from claimed_at; one that died is overtaken after a while.
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Handlers that already ran, so a retry after a failure runs only the rest.
    handled = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    audit = False  # written by every run transition; the runs carry their own history

    class Meta:
        ordering = ["pk"]
        indexes = [
            # The consumer: events not processed yet, oldest first.
            models.Index(
                fields=["id"],
                condition=models.Q(processed_at__isnull=True),
                name="runevent_pending_idx",
            ),
            # The history of one run.
            models.Index(fields=["content_type", "object_id"], name="runevent_run_idx"),
        ]

    def __str__(self):
        return f"event #{self.pk}: {self.content_type.model} #{self.object_id} {self.transition}"

    @classmethod
    def record(cls, run, transition: str, status: str = "") -> "RunEvent":
        """Write the event for `run` (any model); call inside the transition's transaction."""
        return cls.objects.create(
            content_type=ContentType.objects.get_for_model(type(run)),
            object_id=run.pk,
            transition=transition,
            status=str(status or "")[:20],
        )

    @property
    def failed(self) -> bool:
        """Given up: processed with an error kept."""
        return self.processed_at is not None and bool(self.error)


class SsoIdentity(models.Model):
    """The link between a portal account and one identity (issuer, subject) at the OIDC provider.

    Single sign-on finds its account through this row only, never by user name: an existing
    local account is used by SSO only once a superuser has linked it here (dr_portal/sso.py)."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255, help_text="The provider's `sub` claim.")
    linked = models.DateTimeField(default=timezone.now)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SSO identity"
        verbose_name_plural = "SSO identities"
        constraints = [
            # The sign-in lookup (issuer, sub) -> account; one account per identity.
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique_sub")
        ]

    def __str__(self):
        return f"{self.user} = {self.subject} at {self.issuer}"
