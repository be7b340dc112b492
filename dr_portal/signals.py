"""Audit receivers for every model of the portal's apps, and post-migrate set-up.

Models opt out with a class attribute `audit = False` (runs, logs, the audit table itself):
those record the action that started them explicitly.
"""

import hashlib

from django.apps import apps
from django.conf import settings
from django.core.cache import cache

from dr_portal import audit
from dr_portal.lib.logsafe import one_line
from dr_portal.setup import ensure_role_permissions, ensure_system_schedules, reseed


def _audited(sender) -> bool:
    meta = getattr(sender, "_meta", None)
    if meta is None or meta.app_label not in audit.AUDITED_APPS:
        return False
    if sender.__module__ == "__fake__":
        # A migration's historical model: the schema may be older than the audit table's
        # (no chain yet); django_migrations records what migrations did.
        return False
    if meta.app_label == "auth" and meta.model_name not in ("user", "group"):
        return False
    return getattr(sender, "audit", True)


def remember_before_save(sender, instance, raw=False, **kwargs):
    if raw or not _audited(sender) or instance.pk is None:
        return
    old = sender._default_manager.filter(pk=instance.pk).first()
    instance._audit_before = audit.field_snapshot(old) if old else None


def audit_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw or not _audited(sender):
        return
    if sender._meta.model_name == "user" and update_fields and set(update_fields) <= {"last_login"}:
        return  # logins are not configuration changes
    after = audit.field_snapshot(instance)
    if sender._meta.model_name == "user":
        after.pop("password", None)
        after.pop("last_login", None)
    if created:
        audit.record("create", instance, changes={k: ["", v] for k, v in after.items() if v})
        return
    before = getattr(instance, "_audit_before", None) or {}
    changes = audit.diff(before, after)
    if changes:
        audit.record("update", instance, changes=changes)


def audit_delete(sender, instance, **kwargs):
    if _audited(sender):
        audit.record("delete", instance)


def after_migrate(sender, **kwargs):
    """Once per migrate or flush, after the last app: every model's permissions exist then."""
    # Django sends post_migrate only for apps with a models module (not dashboard/).
    with_models = [config for config in apps.get_app_configs() if config.models_module]
    if sender is not with_models[-1]:
        return
    if "plan" not in kwargs:
        # `flush` (tests between transactional cases) empties what data migrations seeded.
        reseed()
    ensure_role_permissions()
    ensure_system_schedules()


def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    """django-axes locked a username out for an address: the audit trail says so, once.

    axes sends this again for every attempt during the lock-out; one entry per lock-out
    keeps an attacker from filling the audit table.
    """
    key = hashlib.sha256(f"{username}|{ip_address}".encode()).hexdigest()[:32]
    if not cache.add(f"dr:lockout:{key}", 1, settings.AXES_COOLOFF_TIME.total_seconds()):
        return

    audit.record(
        "login_locked_out",
        detail=f"user {one_line(str(username or ''))!r} locked out after repeated failed "
        f"log-ins from {ip_address or 'an unknown address'}",
    )
