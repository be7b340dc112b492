"""A real loopback receiver for hook webhooks, and the signature check a receiver makes."""

import hashlib
import hmac
import json

import pytest

from backups import hooks
from tests.failover.servers import start_http_server


@pytest.fixture
def server(settings, monkeypatch):
    """An in-process HTTP server recording what it is sent; post retries made quick."""
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # the receiver listens on loopback
    monkeypatch.setattr(hooks, "POST_BACKOFF_S", [0.05, 0.1])
    srv = start_http_server()
    yield srv
    srv.shutdown()
    srv.server_close()


def received(server, path) -> list[tuple[dict, bytes]]:
    """(headers, body) of every request to `path`."""
    return [(h, b) for _m, p, h, b in server.recorder.requests if p == path]


def verified(headers, body, secret) -> dict:
    """The payload, after checking its signature as a receiver must (over the raw body)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-DR-Signature"], expected)
    return json.loads(body)


def with_webhooks(owner, server, secrets: tuple[str, str], **fields):
    """`owner` (a job or a restore target) with pre and post webhooks to `server` under the
    (pre, post) `secrets`, and `fields`; saved and read back."""
    owner.pre_hook_url, owner.pre_hook_secret = f"{server.url}/hooks/pre", secrets[0]
    owner.post_hook_url, owner.post_hook_secret = f"{server.url}/hooks/post", secrets[1]
    for name, value in fields.items():
        setattr(owner, name, value)
    owner.save()
    return type(owner).objects.get(pk=owner.pk)
