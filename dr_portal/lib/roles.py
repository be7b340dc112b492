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
    if user.is_superuser:
        return set(ORDER)
    cached = getattr(user, "_dr_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        top = max((ORDER.index(n) for n in names if n in ORDER), default=-1)
        cached = set(ORDER[: top + 1])
        user._dr_roles = cached
    return cached


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
