"""Login everywhere but the health probes, and an audit context for every request."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login

from dr_portal.lib.audit import AuditContext, use_context

PUBLIC_PATHS = ("/health/live", "/health/ready", "/metrics")
# /drills/ack/: call-out acknowledgement links, authenticated by their signed token.
PUBLIC_PREFIXES = ("/accounts/login/", "/admin/login/", "/static/", "/drills/ack/")


class LoginRequiredEverywhere:
    """Anonymous requests go to the login page; /metrics checks its own bearer token."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        public = path.rstrip("/") in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        if not public and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)


def client_address(request) -> str:
    # REMOTE_ADDR is the proxy's address behind a load balancer; trust the first
    # forwarded hop only when the deployment says a proxy sets it.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if forwarded and getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "")


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
