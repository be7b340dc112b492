"""Every URL needs a login, except the two health probes (and /metrics' own token)."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"/health/live", "/health/ready", "/accounts/login/", "/admin/login/", "/metrics"}
# Single sign-on's start and callback are part of logging in (404 while SSO is off).
PUBLIC |= {"/accounts/oidc/authenticate/", "/accounts/oidc/callback/"}
# A drill call-out's acknowledgement link: the signed token in it is the credential.
SIGNED_LINKS = {"/drills/ack/x/"}
# The REST API authenticates itself (bearer token or session) and answers 401 as JSON.
API_PREFIXES = ("/api/v1/", "/api/schema/")


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def concrete(route: str) -> str:
    """Fill converters and regex groups with plausible values."""
    route = re.sub(r"<int:\w+>", "1", route)
    route = re.sub(r"<(?:str|slug|path|uuid)?:?\w+>", "x", route)
    route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route)
    route = route.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\", "")
    return "/" + route


def all_paths():
    return sorted({concrete(r) for r in walk(get_resolver().url_patterns)})


def test_there_are_routes_to_check():
    assert len(all_paths()) > 20


@pytest.mark.django_db
def test_every_route_requires_login_except_health(client):
    checked = 0
    for path in all_paths():
        if path.rstrip("/") in {p.rstrip("/") for p in PUBLIC} or path.startswith("/static/"):
            continue
        if path in SIGNED_LINKS:
            assert client.get(path).status_code == 404  # a forged token opens nothing
            continue
        refused = (401,) if path.startswith(API_PREFIXES) else (302, 403)
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code in refused, (
                f"{method.upper()} {path} -> {response.status_code}"
            )
            if response.status_code == 302:
                assert "login" in response["Location"], (
                    f"{path} redirects to {response['Location']}"
                )
            checked += 1
    assert checked > 40


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health/live", "/health/ready"])
def test_health_endpoints_are_public(client, path):
    assert client.get(path).status_code in (200, 503)
