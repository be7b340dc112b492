"""The hook settings a backup job and a restore target share (backups/hooks.py calls them).

Webhooks (signed POSTs) may be set by whoever edits the owner; command hooks run a program
on the worker, so only a superuser sets them (the forms and dr_apply hold to that).
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from backups import validators
from dr_portal.fields import EncryptedTextField
from dr_portal.lib import outbound

PHASES = ("pre", "post")


class HookSettings(models.Model):
    """Abstract: pre/post webhooks and commands around a run, with their timeout."""

    pre_hook_url = models.CharField(
        "pre-hook URL",
        max_length=validators.MAX_URL,
        blank=True,
        validators=[validators.validate_outbound_url],
        help_text="Optional: POSTed a signed JSON payload before the run touches any data.",
    )
    pre_hook_secret = EncryptedTextField(
        help_text="Key of the HMAC-SHA256 signature (X-DR-Signature) of the pre-hook's body."
    )
    post_hook_url = models.CharField(
        "post-hook URL",
        max_length=validators.MAX_URL,
        blank=True,
        validators=[validators.validate_outbound_url],
        help_text="Optional: POSTed a signed JSON payload with the run's outcome when it ends "
        "(retried with back-off).",
    )
    post_hook_secret = EncryptedTextField(
        help_text="Key of the HMAC-SHA256 signature (X-DR-Signature) of the post-hook's body."
    )
    pre_hook_required = models.BooleanField(
        default=True,
        help_text="A failing pre-hook fails the run before it reads anything; off: a warning.",
    )
    pre_hook_command = models.JSONField(
        default=list, blank=True, validators=[validators.validate_hook_command]
    )
    post_hook_command = models.JSONField(
        default=list, blank=True, validators=[validators.validate_hook_command]
    )
    hook_timeout_s = models.PositiveIntegerField(
        "hook timeout (s)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(3600)],
        help_text="Per hook call: a command is killed, a webhook given up, after this long.",
    )

    class Meta:
        abstract = True

    @property
    def pre_hook_url_masked(self) -> str:
        return outbound.mask_url(self.pre_hook_url)

    @property
    def post_hook_url_masked(self) -> str:
        return outbound.mask_url(self.post_hook_url)

    @property
    def has_hooks(self) -> bool:
        return any(
            getattr(self, f"{phase}_hook_{kind}") for phase in PHASES for kind in ("url", "command")
        )

    def hook_errors(self, cleared=()) -> dict[str, str]:
        """A hook URL without its secret (or with one that saving clears: `cleared`)."""
        errors = {}
        for phase in PHASES:
            if not getattr(self, f"{phase}_hook_url"):
                continue
            if f"{phase}_hook_secret" in cleared:
                errors[f"{phase}_hook_url"] = (
                    f"The {phase}-hook URL changed: enter its secret again (a secret is never "
                    "sent to a new URL)."
                )
            elif not getattr(self, f"{phase}_hook_secret"):
                errors[f"{phase}_hook_url"] = (
                    f"A {phase}-hook URL needs a secret: the receiver checks the signature with it."
                )
        return errors
