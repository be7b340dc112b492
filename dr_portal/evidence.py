"""Finished evidence does not change: the guard on runs' save().

Backup runs, restore tests, restores, failover runs and drills are what the compliance
report rests on. Once finished, their evidence fields (EVIDENCE_FIELDS) are sealed: the
finishing transaction chains their digest into the audit log (dr_portal.audit_chain), and
save() refuses to change them. Corrections are new rows. A change made past the ORM (SQL)
is what `manage.py audit_verify` finds from the digest.
"""

from django.db import models


class EvidenceSealed(Exception):
    """A finished run's evidence was about to be changed: corrections are new rows."""


class SealedEvidence(models.Model):
    """Abstract: once `is_sealed`, save() refuses to change the EVIDENCE_FIELDS."""

    EVIDENCE_FIELDS: tuple[str, ...] = ()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None and self.EVIDENCE_FIELDS:
            stored = type(self)._default_manager.filter(pk=self.pk).first()
            if stored is not None and stored.is_sealed():
                changed = [
                    name
                    for name in self.EVIDENCE_FIELDS
                    if _field_value(stored, name) != _field_value(self, name)
                ]
                if changed:
                    raise EvidenceSealed(
                        f"{stored} is finished: its evidence ({', '.join(changed)}) cannot be "
                        "changed; record a correction as a new row instead."
                    )
        super().save(*args, **kwargs)

    def is_sealed(self) -> bool:
        raise NotImplementedError


def _field_value(instance, name):
    model_field = instance._meta.get_field(name)
    return model_field.get_prep_value(model_field.value_from_object(instance))
