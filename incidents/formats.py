"""What a global webhook is sent: the generic Slack-compatible text, PagerDuty Events v2, Opsgenie.

Each format turns one notification into one HTTP request (method, URL, headers, body).
PagerDuty and Opsgenie deduplicate on the alert's key (`dedup_key`, `alias`): a reminder or
a "worse" message of an open alert updates the incident they opened, and the "recovered"
message resolves (closes) it — the pager stops ringing when the portal sees the recovery.
"""

import json
from dataclasses import dataclass
from urllib.parse import quote

from incidents.models import WebhookKind

CLIENT = "DR Portal"
PAGERDUTY_ENDPOINT = "https://events.pagerduty.com/v2/enqueue"
OPSGENIE_ENDPOINT = "https://api.opsgenie.com/v2/alerts"  # EU accounts: api.eu.opsgenie.com

# How loud an alert kind is on a pager (PagerDuty severity, Opsgenie priority); others: error.
LOUDNESS = {
    "rpo_breached": "critical",
    "wal_gap": "critical",
    "backup_failed": "error",
    "restore_test_failed": "error",
    "anomaly": "warning",
    "followup_overdue": "warning",
    "failover_started": "info",
    "failover_finished": "info",
    "test": "info",
}
OPSGENIE_PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}


@dataclass(frozen=True)
class Outgoing:
    url: str
    headers: dict
    body: bytes


def slack_escape(text: str) -> str:
    """Slack-style receivers read <...> as links and mentions (<!channel>): keep user text text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _json(data) -> bytes:
    return json.dumps(data).encode()


def severity(alert, message: str) -> str:
    return "info" if message == "test" else LOUDNESS.get(alert.kind, "error")


def generic(note, url: str, _key: str) -> Outgoing:
    text = slack_escape(f"{note.subject}\n{note.body}")
    return Outgoing(url, {"Content-Type": "application/json"}, _json({"text": text}))


def pagerduty(note, url: str, routing_key: str, *, link: str = "") -> Outgoing:
    """Events API v2: trigger (alert, reminder, worse, event, test) or resolve (recovered)."""
    alert = note.alert
    event = {"routing_key": routing_key, "dedup_key": alert.key[:255]}
    if note.message == "recovered":
        event["event_action"] = "resolve"
    else:
        event["event_action"] = "trigger"
        event["payload"] = {
            "summary": alert.title[:1024],
            "source": CLIENT,
            "severity": severity(alert, note.message),
            "class": alert.kind,
            "custom_details": {"message": note.message, "detail": alert.detail[:10000]},
        }
        if alert.system_id:
            event["payload"]["group"] = alert.system.name
        event["client"] = CLIENT
        if link:
            event["client_url"] = link
            event["links"] = [{"href": link, "text": "Open in DR Portal"}]
    return Outgoing(url, {"Content-Type": "application/json"}, _json(event))


def opsgenie(note, url: str, api_key: str, *, link: str = "") -> Outgoing:
    """Alert API: create (alias = the alert key, so repeats are deduplicated) or close by alias."""
    alert = note.alert
    headers = {"Content-Type": "application/json", "Authorization": f"GenieKey {api_key}"}
    alias = alert.key[:512]
    if note.message == "recovered":
        close = f"{url.rstrip('/')}/{quote(alias, safe='')}/close?identifierType=alias"
        return Outgoing(close, headers, _json({"source": CLIENT, "note": note.subject[:25000]}))
    body = {
        "message": alert.title[:130],
        "alias": alias,
        "description": alert.detail[:15000],
        "source": CLIENT,
        "priority": OPSGENIE_PRIORITY[severity(alert, note.message)],
        "tags": [alert.kind, note.message],
        "details": {"kind": alert.kind, "message": note.message},
    }
    if alert.system_id:
        body["entity"] = alert.system.name[:512]
    if link:
        body["details"]["url"] = link
    return Outgoing(url, headers, _json(body))


def outgoing(note, url: str, *, kind: str, api_key: str = "", link: str = "") -> Outgoing:
    """The request for one notification in the webhook's format."""
    if kind == WebhookKind.PAGERDUTY:
        return pagerduty(note, url, api_key, link=link)
    if kind == WebhookKind.OPSGENIE:
        return opsgenie(note, url, api_key, link=link)
    return generic(note, url, api_key)
