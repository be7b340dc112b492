from django.conf import settings

from dr_portal.lib import roles


def portal(request):
    user = getattr(request, "user", None)
    return {
        "user_roles": roles.user_roles(user) if user else set(),
        "dr_env": settings.DR_ENV,
    }
