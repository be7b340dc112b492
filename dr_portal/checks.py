"""System checks for configuration mistakes that would otherwise surface on the worst day."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from backups.models import missing_key_summary
from dr_portal import sso
from dr_portal.lib import keyring, signing


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


@register()
def check_signing_key(app_configs, **kwargs):
    """A DR_SIGNING_KEY that is not an Ed25519 key would fail every report PDF: say so now."""
    if not settings.DR_SIGNING_KEY:
        return []  # generated into var/ on the first signed PDF
    try:
        signing.private_key()
    except signing.SigningKeyError as exc:
        return [Error(str(exc), id="dr_portal.E003")]
    return []


# `manage.py check` (dr_portal/management/commands/check.py) makes a missing key an error;
# every other command (qcluster, migrate, runserver) only warns: a worker that refused to
# start over one old copy would stop every backup, which is worse than the lost copy.
STRICT = {"keys": False}


@register()
def check_live_copy_keys(app_configs, **kwargs):
    """Every live backup copy must be restorable with the ring: a rotated-out key is an outage."""
    try:
        copies, key_ids = missing_key_summary()
    except keyring.KeyRingError:
        return []  # reported by check_key_ring
    except DatabaseError:
        return []  # no database yet (before the first migrate): nothing to check
    if not copies:
        return []
    level, check_id = (Error, "dr_portal.E002") if STRICT["keys"] else (Warning, "dr_portal.W003")
    return [
        level(
            f"{copies} live backup cop{'y needs' if copies == 1 else 'ies need'} master key"
            f"{'s' if len(key_ids) > 1 else ''} {', '.join(key_ids)}, which "
            f"{'is' if len(key_ids) == 1 else 'are'} not in DR_ENCRYPTION_KEYS: "
            "they cannot be restored.",
            hint="Put the key back into the ring (append it after the newest key); "
            "keep old keys until every copy they sealed has expired.",
            id=check_id,
        )
    ]


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


@register()
def check_sso(app_configs, **kwargs):
    """DR_OIDC_* settings that would fail at the first SSO sign-in (dr_portal/sso.py)."""
    messages = [Error(p, id="dr_portal.E021") for p in sso.config_problems()]
    if not sso.enabled():
        stray = [n for n in ("DR_OIDC_CLIENT_ID", "DR_OIDC_ROLE_MAP") if getattr(settings, n)]
        if stray or not settings.DR_OIDC_PASSWORD_LOGIN:
            messages.append(
                Warning(
                    f"{', '.join(stray) or 'DR_OIDC_PASSWORD_LOGIN'} is set but DR_OIDC_ISSUER "
                    "is not: single sign-on is off and password sign-in stays on.",
                    id="dr_portal.W021",
                )
            )
    elif not settings.DR_OIDC_ROLE_MAP:
        messages.append(
            Warning(
                "DR_OIDC_ROLE_MAP is empty: every SSO user signs in without a role.",
                id="dr_portal.W022",
            )
        )
    return messages
