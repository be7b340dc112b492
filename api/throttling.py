"""Rate limits per API token (or per user for session calls): one budget for every call and
a smaller one for writes. Rates come from DR_API_RATE and DR_API_WRITE_RATE."""

from rest_framework.throttling import SimpleRateThrottle

from api.models import ApiToken


def _ident(request) -> str:
    if isinstance(request.auth, ApiToken):
        return f"token-{request.auth.pk}"
    return f"user-{request.user.pk}"


class CallThrottle(SimpleRateThrottle):
    scope = "call"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None  # refused before anything runs (401)
        return self.cache_format % {"scope": self.scope, "ident": _ident(request)}


class WriteThrottle(CallThrottle):
    scope = "write"

    def get_cache_key(self, request, view):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None
        return super().get_cache_key(request, view)
