"""The portal's roles (dr_portal.lib.roles) as DRF permissions: viewer reads everything,
an action names the role it needs, as the portal's view for the same action does."""

from rest_framework import permissions

from dr_portal.lib import roles


class HasRole(permissions.BasePermission):
    """The viewer role for any call; `required_role` of the action (or view) on top."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = required_role(view)
        if not roles.has_role(user, needed):
            self.message = f"This needs the {needed} role."
            return False
        return True


def required_role(view) -> str:
    action = getattr(view, "action", None)
    handler = getattr(view, action, None) if action else None
    return (
        getattr(handler, "required_role", None)
        or getattr(view, "required_role", None)
        or roles.VIEWER
    )


def needs(role: str):
    """Mark a view action as needing `role` (checked by HasRole before the action runs)."""

    def decorate(fn):
        fn.required_role = role
        return fn

    return decorate
