"""API tokens: one per script or pipeline, created and revoked by its owner in the portal.

The token is shown once; only its SHA-256 is stored, beside a short visible prefix that
names it in lists and in the audit log. A token acts as its user, capped at its role
ceiling: the role of a call is min(ceiling, the user's role at that moment).
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from dr_portal.lib.roles import ORDER, top_role_anywhere
from dr_portal.lib.text import validate_single_line

PREFIX = "drp_"
PREFIX_LENGTH = len(PREFIX) + 8  # "drp_" and 8 characters of the token: enough to tell apart
MAX_DAYS = 365


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class TokenRefused(Exception):
    """Why a presented token does not authenticate; the message is safe to return."""


class ApiTokenQuerySet(models.QuerySet):
    def usable(self, now=None):
        return self.filter(revoked_at__isnull=True, expires_at__gt=now or timezone.now())


class ApiToken(models.Model):
    """One API token of one user: hashed, with a role ceiling and an expiry."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, validators=[validate_single_line])
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)  # the lookup
    role = models.CharField(max_length=10, choices=[(r, r) for r in ORDER])
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiTokenQuerySet.as_manager()

    # Created and revoked with explicit audit lines naming the prefix; every use stamps
    # last_used_at, which is not a configuration change.
    audit = False

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @classmethod
    def issue(cls, user, *, name: str, role: str, days: int) -> tuple["ApiToken", str]:
        """Create a token for `user`; return it and its plaintext, which is never stored."""
        held = top_role_anywhere(user)
        if not held:
            raise ValueError("your account has no role")
        if role not in ORDER or ORDER.index(role) > ORDER.index(held):
            raise ValueError(f"the role ceiling cannot be above your role ({held})")
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"a token expires after 1 to {MAX_DAYS} days")
        while True:
            raw = PREFIX + secrets.token_urlsafe(32)  # 256 bits
            if not cls.objects.filter(prefix=raw[:PREFIX_LENGTH]).exists():
                break
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=raw[:PREFIX_LENGTH],
            digest=digest(raw),
            role=role,
            expires_at=timezone.now() + timedelta(days=days),
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> "ApiToken":
        """The token `raw` names, if it may be used now; TokenRefused says why not."""
        token = cls.objects.select_related("user").filter(digest=digest(raw)).first()
        if token is None:
            raise TokenRefused("Invalid API token.")
        now = timezone.now()
        if token.revoked_at is not None:
            raise TokenRefused(f"API token {token.prefix}… was revoked.")
        if token.expires_at <= now:
            raise TokenRefused(f"API token {token.prefix}… expired on {token.expires_at:%Y-%m-%d}.")
        if not token.user.is_active:
            raise TokenRefused(f"The account of API token {token.prefix}… is disabled.")
        # At most one write a minute per token: a polling script does not write every call.
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
            cls.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token

    def revoke(self, by=None) -> bool:
        """Revoke once; False if it already was."""
        done = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=by
        )
        self.refresh_from_db(fields=["revoked_at", "revoked_by"])
        return bool(done)

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    def effective_role(self) -> str:
        """min(ceiling, the user's current highest role): the cap of a call with this token
        (which limit_roles applies to the global role and to each system role)."""
        current = top_role_anywhere(self.user)
        if not current:
            return ""
        return ORDER[min(ORDER.index(self.role), ORDER.index(current))]
