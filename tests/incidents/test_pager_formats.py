"""PagerDuty Events v2 and Opsgenie as webhook formats: the exact JSON a real receiver gets."""

import json

import pytest
from django.urls import reverse

from incidents.alerts import alert, recover
from incidents.models import Notification, Webhook
from tests.failover.servers import start_http_server

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
GENIE_KEY = "6a1c0e6e-0000-4000-8000-geniekey0001"


@pytest.fixture
def server(settings):
    settings.DR_OUTBOUND_ALLOW = ["127.0.0.1"]  # the receiver listens on loopback
    settings.DR_PORTAL_URL = "https://dr.example.org"
    srv = start_http_server()
    srv.recorder.default = (202, '{"status": "success"}', 0.0)
    yield srv
    srv.shutdown()
    srv.server_close()


def _received(server):
    return [(m, p, h, json.loads(b)) for m, p, h, b in server.recorder.requests]


def test_pagerduty_triggers_then_resolves_on_the_alert_key(sync_queue, db, server):
    Webhook.objects.create(
        name="pd", kind="pagerduty", url=f"{server.url}/v2/enqueue", api_key=ROUTING_KEY
    )
    sync_queue(
        alert,
        "rpo:7",
        "rpo_breached",
        "RPO of toolhub-db breached: 3 h (target 1 h)",
        detail="no good backup since 09:00",
        url="/recovery/sources/7/",
    )
    sync_queue(recover, "rpo:7", title="RPO of toolhub-db back within its target")
    (m1, p1, h1, trigger), (m2, p2, h2, resolve) = _received(server)
    assert (m1, p1, h1["Content-Type"]) == ("POST", "/v2/enqueue", "application/json")
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "rpo:7",
        "event_action": "trigger",
        "payload": {
            "summary": "RPO of toolhub-db breached: 3 h (target 1 h)",
            "source": "DR Portal",
            "severity": "critical",
            "class": "rpo_breached",
            "custom_details": {"message": "alert", "detail": "no good backup since 09:00"},
        },
        "client": "DR Portal",
        "client_url": "https://dr.example.org/recovery/sources/7/",
        "links": [
            {"href": "https://dr.example.org/recovery/sources/7/", "text": "Open in DR Portal"}
        ],
    }
    assert (m2, p2) == ("POST", "/v2/enqueue")
    assert resolve == {"routing_key": ROUTING_KEY, "dedup_key": "rpo:7", "event_action": "resolve"}
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_opsgenie_creates_with_an_alias_then_closes_it(sync_queue, db, server):
    Webhook.objects.create(
        name="genie", kind="opsgenie", url=f"{server.url}/v2/alerts", api_key=GENIE_KEY
    )
    sync_queue(alert, "backup:3", "backup_failed", "Backup nightly failed", "pg_dump: refused")
    sync_queue(recover, "backup:3", title="Backup nightly succeeded again")
    (m1, p1, h1, create), (m2, p2, h2, close) = _received(server)
    assert (m1, p1) == ("POST", "/v2/alerts")
    assert h1["Authorization"] == f"GenieKey {GENIE_KEY}"
    assert create == {
        "message": "Backup nightly failed",
        "alias": "backup:3",
        "description": "pg_dump: refused",
        "source": "DR Portal",
        "priority": "P2",
        "tags": ["backup_failed", "alert"],
        "details": {"kind": "backup_failed", "message": "alert"},
    }
    assert (m2, p2) == ("POST", "/v2/alerts/backup%3A3/close?identifierType=alias")
    assert h2["Authorization"] == f"GenieKey {GENIE_KEY}"
    assert close == {"source": "DR Portal", "note": "[DR Portal] Backup nightly succeeded again"}


def test_a_pager_answering_an_error_is_retried_and_keys_never_leak(sync_queue, db, server):
    Webhook.objects.create(
        name="pd", kind="pagerduty", url=f"{server.url}/v2/enqueue", api_key=ROUTING_KEY
    )
    server.recorder.default = (400, '{"status": "invalid event"}', 0.0)
    sync_queue(alert, "k", "backup_failed", "Backup failed")
    note = Notification.objects.get()
    assert note.status == "retry" and note.last_error == "DeliveryError: webhook answered HTTP 400"
    assert ROUTING_KEY not in note.last_error


def test_the_form_asks_for_the_key_and_never_shows_it(manager_client, db, settings):
    settings.DR_OUTBOUND_ALLOW = []
    url = reverse("incidents:webhook_new")
    data = {"name": "pd", "kind": "pagerduty", "active": "on"}
    data["url"] = "https://events.pagerduty.com/v2/enqueue"
    response = manager_client.post(url, data)
    assert response.status_code in (200, 400)
    assert "PagerDuty Events API v2 needs its routing or API key" in response.content.decode()
    assert not Webhook.objects.exists()
    response = manager_client.post(url, {**data, "api_key": ROUTING_KEY})
    assert response.status_code == 302
    hook = Webhook.objects.get()
    assert hook.kind == "pagerduty" and hook.api_key.reveal() == ROUTING_KEY
    page = manager_client.get(reverse("incidents:contacts")).content.decode()
    assert "PagerDuty Events API v2" in page and ROUTING_KEY not in page
