"""Before any other page: verify (enrolled users) or enrol (when DR_REQUIRE_2FA says so)."""

from urllib.parse import urlencode

from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from dr_portal.two_factor import services

# Reachable without the second factor: signing in and out, the 2FA steps themselves, static
# files, probes, and call-out acknowledgement links (they carry their own signed token).
OPEN_PREFIXES = (
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/2fa/verify/",
    "/accounts/2fa/enrol/",
    "/admin/logout/",
    "/static/",
    "/health/",
    "/metrics",
    "/drills/ack/",
)


class TwoFactorRequired:
    """One enforcement point for the portal, the admin and the API's session sign-in.

    API calls with a bearer token are not affected: a token is its own credential, made by a
    verified session (SECURITY.md)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if path.startswith(OPEN_PREFIXES) or not request.user.is_authenticated:
            return self.get_response(request)
        if path.startswith("/api/") and request.headers.get("Authorization"):
            return self.get_response(request)  # the token decides; the session does not
        step = services.pending_step(request)
        if not step:
            return self.get_response(request)
        if path.startswith("/api/"):
            return JsonResponse(
                {"detail": "Finish two-factor sign-in in the portal first, or use an API token."},
                status=403,
            )
        query = urlencode({"next": request.get_full_path()})
        return redirect(f"{reverse(f'two_factor:{step}')}?{query}")
