"""Roles: viewer reads, operator runs and writes incidents, manager configures.

A user's *global* role is a group and holds on every system; a *system role*
(backups.SystemRole) adds a role on one system. The effective role on a system is the
higher of the two; an API token's ceiling (limit_roles) caps both. A higher role includes
the lower ones; superusers have every role everywhere.

Where a check names no system, only the global role counts: creating or changing things
that belong to no system (destinations, restore targets, contacts, settings, metrics) needs
a global role. An object tied to several systems (a drill plan, an incident) needs the role
on every one of them; an object tied to none needs the global role.
"""

from collections.abc import Iterable
from functools import wraps

from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.db.models import IntegerField, Value
from django.shortcuts import get_object_or_404

VIEWER, OPERATOR, MANAGER = "viewer", "operator", "manager"
ORDER = [VIEWER, OPERATOR, MANAGER]


def _level(role: str) -> int:
    return ORDER.index(role)


def _ceiling_level(user) -> int:
    ceiling = getattr(user, "_dr_role_ceiling", None)
    return _level(ceiling) if ceiling is not None else len(ORDER) - 1


def _global_level(user) -> int:
    """The uncapped global level (-1 for none), cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return -1
    if user.is_superuser:
        return len(ORDER) - 1
    if getattr(user, "_dr_global_level", None) is None:
        _load(user)
    return user._dr_global_level


def _load(user) -> None:
    """Groups and system roles in one query, cached on the user object for the request."""
    groups = user.groups.order_by().annotate(system_id=Value(None, IntegerField()))
    system_roles = user.system_roles.order_by().values_list("role", "system_id")
    rows = groups.values_list("name", "system_id").union(system_roles, all=True)
    level, levels = -1, {}
    for name, system_id in rows:
        if name not in ORDER:
            continue
        if system_id is None:
            level = max(level, _level(name))
        else:
            levels[system_id] = _level(name)
    user._dr_global_level, user._dr_system_levels = level, levels


def forget(user) -> None:
    """Drop the roles cached on `user` (after changing their groups or system roles)."""
    for name in ("_dr_global_level", "_dr_system_levels"):
        user.__dict__.pop(name, None)


def user_roles(user) -> set[str]:
    """The user's global roles (capped by a token's ceiling)."""
    top = min(_global_level(user), _ceiling_level(user))
    return set(ORDER[: top + 1])


def top_role(user) -> str:
    """The highest global role `user` has now ("" for none)."""
    held = user_roles(user)
    return next((r for r in reversed(ORDER) if r in held), "")


def system_roles(user) -> dict[int, str]:
    """{system id: role} where a system role gives more than the global one (capped)."""
    return {sid: ORDER[lv] for sid, lv in _system_levels(user).items() if lv >= 0}


def top_role_anywhere(user) -> str:
    """The highest role `user` has globally or on any system ("" for none): the most an
    API token of theirs may carry."""
    held = user_roles(user)
    for level in _system_levels(user).values():
        held |= set(ORDER[: level + 1])
    return next((r for r in reversed(ORDER) if r in held), "")


def limit_roles(user, ceiling: str) -> None:
    """Cap `user`'s roles at `ceiling` for this request (an API token's role ceiling).

    Every role check (has_role, scope, forms, restore targets) then sees min(ceiling, the
    user's current role), so demoting the user demotes their tokens at the next call."""
    if ceiling not in ORDER:
        raise ValueError(f"unknown role {ceiling!r}")
    user._dr_role_ceiling = ceiling


def _system_levels(user) -> dict[int, int]:
    """{system id: effective level} for the systems where a system role beats the global
    one, capped by the ceiling; cached on the user object (one query per request)."""
    if not getattr(user, "is_authenticated", False) or user.is_superuser:
        return {}
    floor, cap = _global_level(user), _ceiling_level(user)
    levels = user._dr_system_levels
    return {sid: min(lv, cap) for sid, lv in levels.items() if lv > floor}


def _system_ids(system) -> set[int]:
    if system is None:
        return set()
    if isinstance(system, int):
        return {system}
    if isinstance(system, Iterable):
        return {s if isinstance(s, int) else s.pk for s in system}
    return {system.pk}


def level_on(user, system_id: int) -> int:
    """The effective level on one system: max(global, system role), capped (-1 for none)."""
    glob = min(_global_level(user), _ceiling_level(user))
    return max(glob, _system_levels(user).get(system_id, -1))


def roles_on(user, system) -> set[str]:
    """The roles `user` has on `system` (a System, its id, or several: the common part)."""
    ids = _system_ids(system)
    if not ids:
        return user_roles(user)
    top = min(level_on(user, sid) for sid in ids)
    return set(ORDER[: top + 1])


def has_role(user, role: str, system=None) -> bool:
    """`role` globally (system=None), or on `system` (a System, an id, or an iterable:
    then on every one of them; an empty one means an object of no system: global)."""
    return role in roles_on(user, system)


def has_role_somewhere(user, role: str) -> bool:
    """`role` globally or on at least one system (may the user open a scoped page?)."""
    if role in user_roles(user):
        return True
    return any(lv >= _level(role) for lv in _system_levels(user).values())


def visible_systems(user, role: str = VIEWER) -> set[int] | None:
    """Ids of the systems where `user` has `role`; None means all (a global role)."""
    if role in user_roles(user):
        return None
    return {sid for sid, lv in _system_levels(user).items() if lv >= _level(role)}


def scope(qs, user, path: str, role: str = VIEWER, many: bool = False):
    """`qs` narrowed to the rows whose system (reached by `path`, e.g. "source__system")
    the user has `role` on. `many`: the path is multi-valued (a plan's systems) and every
    one of a row's systems must qualify; rows with no system then need the global role."""
    ids = visible_systems(user, role)
    if ids is None:
        return qs
    if not many:
        return qs.filter(**{f"{path}__in": ids})
    system_model = apps.get_model("backups", "System")
    hidden = system_model.objects.exclude(pk__in=ids).values("pk")
    inner = qs.model.objects.filter(**{f"{path}__in": ids}).exclude(**{f"{path}__in": hidden})
    return qs.filter(pk__in=inner.values("pk"))


def get_scoped(qs, user, path: str, role: str = VIEWER, many: bool = False, **lookup):
    """The object `lookup` finds in `qs`: 404 unless the user may see it (its existence is
    not leaked), 403 if they see it but lack `role` on its system(s)."""
    obj = get_object_or_404(scope(qs, user, path, VIEWER, many), **lookup)
    if role != VIEWER and visible_systems(user, role) is not None:
        if not scope(qs.model.objects.filter(pk=obj.pk), user, path, role, many).exists():
            raise PermissionDenied(f"This needs the {role} role on this system.")
    return obj


def require_role(user, role: str, system=None):
    if not has_role(user, role, system):
        where = "" if system is None else " on this system"
        raise PermissionDenied(f"This needs the {role} role{where}.")


def role_required(role: str):
    """View decorator: 403 unless the user has the global `role` (login is enforced by
    middleware). Views not marked system_scoped are closed to users with system roles only."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            require_role(request.user, role)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def system_role_required(role: str = VIEWER):
    """View decorator for a page that scopes its rows (scope()) and checks `role` on the
    object's system itself: open to users with `role` globally or on some system."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role_somewhere(request.user, role):
                raise PermissionDenied(f"This needs the {role} role.")
            return view(request, *args, **kwargs)

        wrapped.system_scoped = True
        return wrapped

    return decorator
