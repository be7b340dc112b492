"""Who changed what, when, from where: the audit trail.

The web middleware, management commands (manage.py) and workers set a context;
model saves and deletes in the portal's apps are recorded against it by signal
receivers (dr_portal.apps), and actions that change no row (run now, restore,
test connection) call record() themselves.
"""

import contextlib
import contextvars
import getpass
from dataclasses import dataclass

from dr_portal import audit_chain
from dr_portal.fields import EncryptedTextField

AUDITED_APPS = {"backups", "recovery", "drills", "incidents", "dr_portal", "auth"}


@dataclass(frozen=True)
class AuditContext:
    actor_id: int | None = None
    actor_name: str = "system"
    source: str = "system"  # web, admin, command, worker, system
    address: str = ""


_current = contextvars.ContextVar("dr_audit_context", default=AuditContext())  # noqa: B039 (frozen)


def current() -> AuditContext:
    return _current.get()


@contextlib.contextmanager
def use_context(ctx: AuditContext):
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def replace_context(ctx: AuditContext) -> None:
    """Swap the context inside an enclosing use_context() block (which restores the outer
    one at its end): the API names its caller only once the token has been read."""
    _current.set(ctx)


def command_context(command: str):
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return use_context(AuditContext(actor_name=f"{user} (manage.py {command})", source="command"))


def record(action: str, obj=None, *, changes: dict | None = None, user=None, detail: str = ""):
    """Write one audit entry; the actor comes from `user` or from the current context."""
    # manage.py enters command_context before Django is set up: models load here, not above.
    from dr_portal.models import AuditEntry  # noqa: PLC0415

    ctx = current()
    actor_id, actor_name = ctx.actor_id, ctx.actor_name
    if user is not None and getattr(user, "is_authenticated", False) and user.pk != actor_id:
        actor_id, actor_name = user.pk, user.get_username()
    object_type = object_id = object_repr = ""
    if obj is not None:
        object_type = f"{obj._meta.app_label}.{obj._meta.model_name}"
        object_id = str(obj.pk or "")
        object_repr = str(obj)[:200]
    address = ctx.address or None
    if address:  # stored normalised: the hash is taken over what the database keeps
        address = AuditEntry._meta.get_field("address").get_prep_value(address)
    entry = AuditEntry(
        actor_id=actor_id,
        actor_name=actor_name[:150],
        source=ctx.source,
        address=address,
        action=action[:40],
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        changes=changes or {},
        detail=detail[:1000],
    )
    return audit_chain.append(entry)


def seal_evidence(instance):
    """Chain the digest of a run that has just finished, in the transaction that finished it."""
    instance.refresh_from_db(fields=list(instance.EVIDENCE_FIELDS))
    return record(
        audit_chain.SEAL_ACTION,
        instance,
        changes={"evidence_sha256": audit_chain.evidence_digest(instance)},
        detail=f"{instance._meta.verbose_name} finished: its evidence fields are sealed",
    )


def field_snapshot(instance) -> dict:
    """Concrete field values as strings; secrets are shown as changed, never as values."""
    snapshot = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname, None)
        if isinstance(field, EncryptedTextField):
            value = "(secret set)" if value else ""
        snapshot[field.name] = "" if value is None else str(value)[:500]
    return snapshot


def diff(before: dict, after: dict) -> dict:
    return {k: [before.get(k, ""), v] for k, v in after.items() if before.get(k, "") != v}
