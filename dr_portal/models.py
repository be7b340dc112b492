"""Portal-wide records: the audit trail and settings confirmed by people."""

from django.db import models
from django.utils import timezone

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
