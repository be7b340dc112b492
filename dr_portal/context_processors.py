from django.conf import settings
from django.utils.functional import SimpleLazyObject

from dashboard.destination_health import failing_destinations
from dashboard.worker_health import worker_down
from dr_portal.lib import roles


def portal(request):
    user = getattr(request, "user", None)
    signed_in = bool(user and user.is_authenticated)
    return {
        "user_roles": roles.user_roles(user) if user else set(),
        "dr_env": settings.DR_ENV,
        # Every signed-in page shows the dead-worker banner (base.html); lazy, so htmx
        # fragments and pages that do not render the base pay nothing for it.
        "worker_down": SimpleLazyObject(worker_down) if signed_in else {},
        # Beside it: destinations a backup, scrub or test found failing in the last hour.
        # (Destinations are shared by every system: named to global roles only.)
        "destinations_failing": SimpleLazyObject(failing_destinations)
        if signed_in and roles.has_role(user, roles.VIEWER)
        else [],
        "banner_poll_s": settings.DR_BANNER_POLL_S,
    }
