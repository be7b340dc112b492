"""The portal's roles (dr_portal.lib.roles) as DRF permissions: viewer reads everything,
an action names the role it needs, as the portal's view for the same action does.

A user with roles on some systems only reaches the views marked `system_scoped` (their
querysets are scoped by ReadViewSet.system_path and their actions check the object's
system); every other view needs the global role."""

from rest_framework import permissions

from dr_portal.lib import roles


class HasRole(permissions.BasePermission):
    """The viewer role for any call; `required_role` of the action (or view) on top."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        needed = required_role(view)
        if roles.has_role(user, needed):
            return True
        if getattr(view, "system_scoped", False) and roles.has_role_somewhere(user, needed):
            return True
        scoped = roles.visible_systems(user) is not None and roles.has_role_somewhere(
            user, "viewer"
        )
        where = " (a global role: this call is not limited to a system)" if scoped else ""
        self.message = f"This needs the {needed} role{where}."
        return False


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
