"""API fixtures: a token per persona, and a client that sends it as a bearer token."""

import pytest
from django.core.cache import cache
from django.test import Client

from api.models import ApiToken


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Throttle counters live in the cache, which outlives a test's transaction."""
    cache.clear()
    yield
    cache.clear()


def token_for(user, role=None, days=30, name="ci"):
    """The plaintext of a new token of `user` (ceiling: `role`, default the user's own)."""
    from dr_portal.lib.roles import top_role

    return ApiToken.issue(user, name=name, role=role or top_role(user), days=days)[1]


class Api:
    """A test client that authenticates with one bearer token and speaks JSON."""

    def __init__(self, raw: str):
        self.raw = raw
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def get(self, path, **params):
        return self.client.get(path, params)

    def post(self, path, body=None):
        return self.client.post(path, body or {}, content_type="application/json")


@pytest.fixture
def api_as():
    """api_as(user, role=None) -> Api with a fresh token of that user."""

    def make(user, role=None, days=30):
        return Api(token_for(user, role=role, days=days))

    return make
