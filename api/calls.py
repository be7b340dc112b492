"""Every API call leaves a trace: writes, refusals and failed sign-ins in the audit log,
reads in the log.

Reads are not audit rows: monitoring polls readiness every minute and would bury the
changes people look for. A token's use shows as its last_used_at; a read's log line
names the token, method, path and status like an audit row does.
"""

import logging

from django.core.cache import cache
from rest_framework import exceptions

from api.models import PREFIX, PREFIX_LENGTH, ApiToken
from dr_portal import audit

log = logging.getLogger("dr_portal.api")

SAFE = ("GET", "HEAD", "OPTIONS")
REFUSED = (401, 403, 429)
# Failed token sign-ins per address per minute before the API answers 429 without looking:
# tokens are 256 bits, so this is not about guessing but about flooding the audit log.
FAILED_AUTH_LIMIT = 30


def presented_prefix(request) -> str:
    """The visible prefix of the token in the request, never more of it."""
    header = request.META.get("HTTP_AUTHORIZATION", "").split()
    if len(header) == 2 and header[1].startswith(PREFIX):
        return header[1][:PREFIX_LENGTH]
    return ""


def describe(request, response) -> str:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    prefix = token.prefix if token else presented_prefix(request)
    via = f"token {prefix}…" if prefix else "session"
    return f"{request.method} {request.path} -> {response.status_code} ({via})"


def record_call(request, response) -> None:
    status = response.status_code
    detail = describe(request, response)
    quiet = status == 401 and count_failed_auth(request) > FAILED_AUTH_LIMIT
    if quiet or getattr(request, "dr_auth_throttled", False):
        log.warning("API %s (failed sign-ins over the limit: logged, not audited)", detail)
        return
    if request.method in SAFE and status not in REFUSED:
        log.info("API %s by %s", detail, audit.current().actor_name)
        return
    action = {401: "API sign-in refused", 403: "API call refused", 429: "API call throttled"}
    audit.record(action.get(status, f"API {request.method}"), detail=detail)


def _failure_key(request) -> str:
    return f"dr-api-auth-fail:{audit.current().address or 'unknown'}"


def check_failed_auth_budget(request) -> None:
    """429 before the lookup once an address failed too often this minute."""
    failures = cache.get(_failure_key(request), 0)
    if failures >= FAILED_AUTH_LIMIT:
        request.dr_auth_throttled = True
        raise exceptions.Throttled(
            wait=60, detail="Too many failed API sign-ins from this address; wait a minute."
        )


def count_failed_auth(request) -> int:
    """Count one failed sign-in of the caller's address; return the count this minute."""
    key = _failure_key(request)
    if cache.add(key, 1, timeout=60):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=60)
        return 1
