"""Roles are groups: viewer reads, operator runs and writes incidents, manager configures.

A higher role includes the lower ones; superusers have every role.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied

VIEWER, OPERATOR, MANAGER = "viewer", "operator", "manager"
ORDER = [VIEWER, OPERATOR, MANAGER]


def user_roles(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    ceiling = getattr(user, "_dr_role_ceiling", None)
    if user.is_superuser:
        roles = set(ORDER)
    else:
        roles = getattr(user, "_dr_roles", None)
        if roles is None:
            names = set(user.groups.values_list("name", flat=True))
            top = max((ORDER.index(n) for n in names if n in ORDER), default=-1)
            roles = set(ORDER[: top + 1])
            user._dr_roles = roles
    if ceiling is not None:
        roles = roles & set(ORDER[: ORDER.index(ceiling) + 1])
    return roles


def top_role(user) -> str:
    """The highest role `user` has now ("" for none)."""
    held = user_roles(user)
    return next((r for r in reversed(ORDER) if r in held), "")


def limit_roles(user, ceiling: str) -> None:
    """Cap `user`'s roles at `ceiling` for this request (an API token's role ceiling).

    Every role check (has_role, forms, restore targets) then sees min(ceiling, the user's
    current role), so demoting the user demotes their tokens at the next call."""
    if ceiling not in ORDER:
        raise ValueError(f"unknown role {ceiling!r}")
    user._dr_role_ceiling = ceiling


def has_role(user, role: str) -> bool:
    return role in user_roles(user)


def require_role(user, role: str):
    if not has_role(user, role):
        raise PermissionDenied(f"This needs the {role} role.")


def role_required(role: str):
    """View decorator: 403 unless the user has `role` (login is enforced by middleware)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            require_role(request.user, role)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
