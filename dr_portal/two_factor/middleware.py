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
    "/accounts/oidc/",  # signing in again through single sign-on starts a new session
    "/admin/logout/",
    "/static/",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/drills/ack/",
)

# The API's JSON endpoints: a session not yet verified gets 403 JSON instead of a redirect.
API_PREFIXES = ("/api/v1/", "/api/schema/")


def _bearer(request) -> bool:
    """A bearer token is sent: DRF authenticates with it or answers 401, never the session."""
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


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
        api = path.startswith(API_PREFIXES)
        if api and _bearer(request):
            return self.get_response(request)  # the token decides (or is refused), not the session
        step = services.pending_step(request)
        if not step:
            return self.get_response(request)
        if api:
            return JsonResponse(
                {"detail": "Finish two-factor sign-in in the portal first, or use an API token."},
                status=403,
            )
        query = urlencode({"next": request.get_full_path()})
        return redirect(f"{reverse(f'two_factor:{step}')}?{query}")
