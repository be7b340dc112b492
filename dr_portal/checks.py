"""System checks for configuration mistakes that would otherwise surface on the worst day."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from dr_portal.lib import keyring


@register()
def check_key_ring(app_configs, **kwargs):
    try:
        keyring.parse_ring(settings.DR_ENCRYPTION_KEYS)
    except keyring.KeyRingError as exc:
        return [Error(str(exc), id="dr_portal.E001")]
    messages = []
    if getattr(settings, "DR_KEYRING_GENERATED", False):
        messages.append(
            Warning(
                "The encryption key ring was generated into var/dr_encryption_keys. "
                "Escrow it away from the backups (password manager, HSM, printed in an "
                "envelope): without it no encrypted backup can be restored.",
                id="dr_portal.W001",
            )
        )
    return messages


@register(deploy=True)
def check_production(app_configs, **kwargs):
    messages = []
    if not settings.PRODUCTION:
        return messages
    if not settings.DR_METRICS_TOKEN:
        messages.append(
            Warning(
                "DR_METRICS_TOKEN is not set: /metrics answers 403 to everyone.",
                id="dr_portal.W002",
            )
        )
    return messages
