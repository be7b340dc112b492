"""Login and the viewer role everywhere but a short allow-list; an audit context per request."""

import ipaddress

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from dr_portal.audit import AuditContext, use_context
from dr_portal.errors import forbidden
from dr_portal.lib import roles

# Anonymous: the probes (/metrics checks its own bearer token) and the login pages.
PUBLIC_PATHS = ("/health/live", "/health/ready", "/metrics")
# /drills/ack/: call-out acknowledgement links, authenticated by their signed token.
# /api/v1/ and /api/schema/: the API authenticates (token or session) and answers 401/403
# itself, as JSON; its doc page (/api/docs/) sends people to the login page like any other.
PUBLIC_PREFIXES = (
    "/accounts/login/",
    "/accounts/oidc/",  # single sign-on start and callback (404 unless configured)
    "/admin/login/",
    "/static/",
    "/drills/ack/",
    "/api/v1/",
    "/api/schema/",
)
# Logged in but role-less: they may still leave, and staff keep the admin (it checks is_staff).
NO_ROLE_PREFIXES = ("/accounts/logout/", "/admin/")


def is_public(path: str) -> bool:
    return path.rstrip("/") in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class LoginRequiredEverywhere:
    """Anonymous requests go to the login page; a logged-in user with no role gets 403.

    One enforcement point, so a new view cannot forget it; views still check the higher
    roles (operator, manager) themselves.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if is_public(path):
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        if not path.startswith(NO_ROLE_PREFIXES) and not roles.has_role(request.user, roles.VIEWER):
            return forbidden(
                request,
                PermissionDenied("Your account has no role yet: ask a manager to give you one."),
            )
        return self.get_response(request)


def client_address(request) -> str:
    """The caller's address: REMOTE_ADDR, or behind DR_TRUSTED_PROXIES proxies the address
    the outermost of them saw (Nth from the right of X-Forwarded-For).

    Hops further left were written by the client and prove nothing, so they are never used.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = getattr(settings, "DR_TRUSTED_PROXIES", 0)
    if proxies <= 0:
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [h for h in hops if h]
    if len(hops) < proxies:
        return remote  # fewer hops than proxies: the header did not come through them
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def axes_client_address(request) -> str:
    """AXES_CLIENT_IP_CALLABLE: lock-outs key on the same address the audit log shows."""
    return client_address(request)


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        ctx = AuditContext(
            actor_id=user.pk if user.is_authenticated else None,
            actor_name=user.get_username() if user.is_authenticated else "anonymous",
            source="admin" if request.path.startswith("/admin/") else "web",
            address=client_address(request),
        )
        with use_context(ctx):
            return self.get_response(request)


class ContentSecurityPolicy:
    """The DR_CSP header on every response (no inline script: see static/dr_portal/portal.js)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "DR_CSP", "")
        if policy:
            response.headers.setdefault("Content-Security-Policy", policy)
        return response
