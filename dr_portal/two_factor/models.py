"""Recovery codes: a django-otp device whose codes are stored as SHA-256 digests.

django-otp's otp_static keeps its tokens in clear text; anyone reading the portal's database
(or a dump of it) would hold working second factors. A code is 80 random bits, so a plain
SHA-256 is enough (no slow hash needed: there is nothing to guess), and checking one is a
single indexed lookup.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin
from django_otp.plugins.otp_totp.models import TOTPDevice

CODE_COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper without doubt


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))  # ~79 bits
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def normalise(code: str) -> str:
    """What people type: any case, spaces or dashes anywhere."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


class RecoveryCodeDevice(ThrottlingMixin, Device):
    """A user's set of one-time recovery codes (one device per user)."""

    class Meta:
        verbose_name = "recovery code set"

    def get_throttle_factor(self):
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def regenerate(self) -> list[str]:
        """New codes replace every old one; the clear codes are returned once, never stored."""
        codes = [_new_code() for _ in range(CODE_COUNT)]
        with transaction.atomic():
            self.codes.all().delete()
            RecoveryCode.objects.bulk_create(
                RecoveryCode(device=self, digest=digest(c)) for c in codes
            )
        return codes

    def remaining(self) -> int:
        return self.codes.filter(used=None).count()

    def verify_token(self, token):
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        # A conditional update: two requests racing with the same code, only one wins.
        spent = RecoveryCode.objects.filter(
            device=self, digest=digest(str(token)), used=None
        ).update(used=timezone.now())
        if spent == 1:
            self.throttle_reset()
            return True
        self.throttle_increment()
        return False


class RecoveryCode(models.Model):
    """One recovery code, as its digest; `used` is set when it is spent."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)
    used = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Serves verify_token's lookup of one unspent code by its digest.
        indexes = [models.Index(fields=["device", "digest"], name="two_factor_code_lookup")]

    def __str__(self):
        return f"recovery code {self.pk} ({'used' if self.used else 'unused'})"


class AuthenticatorApp(TOTPDevice):
    """django-otp's TOTP device, listed in the admin under this app (keys never shown)."""

    class Meta:
        proxy = True
        verbose_name = "authenticator app"
