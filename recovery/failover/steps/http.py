"""http_check and webhook: one guarded request each (dr_portal.lib.outbound), no redirects followed.

Internal addresses are refused unless DR_OUTBOUND_ALLOW names them, and a step records
the status and whether the expected text was found, never the body of the answer: a
check must not become a way to read what the server can reach.
"""

from __future__ import annotations

import json

from dr_portal.lib import outbound

from .base import Context, Kind, Param, StepResult, http_url, one_of, positive, status_list

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
BODY_SEARCHED = 256 * 1024  # body_contains looks this far into the answer


def request(method, url, *, headers=None, body: bytes | None = None, timeout: float, read=0):
    """The outbound.Response of one guarded request; Refused or OSError when none came."""
    return outbound.request(method, url, headers=headers, body=body, timeout=timeout, max_body=read)


def _status_line(method, url, resp) -> str:
    line = f"{method} {url} -> {resp.status}"
    if 300 <= resp.status < 400:
        line += " (a redirect; not followed)"
    return line


def _expected(value) -> list[int]:
    return value if isinstance(value, list) else [value]


def _headers(params, ctx: Context) -> dict:
    headers = {"User-Agent": "dr-portal-failover/1", **params.get("headers", {})}
    if ctx.secret:
        headers["Authorization"] = f"Bearer {ctx.secret}"
    return headers


def _check_headers(value):
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "must map header names to text values"
    if any(k.lower() == "authorization" for k in value):
        return "put the bearer token in the step's secret, not in headers"
    return None


def _timeout(params, ctx: Context) -> float:
    left = ctx.remaining()
    if left <= 0:
        ctx.check()
    return max(0.05, min(params["request_timeout"], left))


class HttpCheck(Kind):
    name = "http_check"
    title = "HTTP check"
    verification = True
    is_check = True
    secret_label = "bearer token (optional)"
    endpoint_params = ("url",)
    default_timeout = 60.0
    params = {
        "url": Param((str,), check=http_url, help="http:// or https:// URL"),
        "method": Param((str,), "GET", one_of(*METHODS)),
        "expect_status": Param((int, list), 200, status_list),
        "expect": Param(
            (str,),
            "up",
            one_of("up", "down"),
            help="'down' passes when the service does NOT answer as expected",
        ),
        "body_contains": Param((str,), None),
        "request_timeout": Param((float,), 5.0, positive, help="seconds per request"),
        "headers": Param((dict,), None, _check_headers),
    }

    def has_side_effects(self, params):
        # A POST or DELETE "check" changes things: skipped in test mode like a webhook.
        return params.get("method", "GET") not in SAFE_METHODS

    def side_effects_reason(self, params):
        return f"an http_check with method {params.get('method')} changes things"

    def describe(self, params):
        want = (
            "is down"
            if params.get("expect") == "down"
            else f"answers {params.get('expect_status', 200)}"
        )
        return f"check that {params.get('method', 'GET')} {params.get('url')} {want}"

    def run(self, params, ctx):
        expected = _expected(params["expect_status"])
        wanted = params.get("body_contains")
        try:
            resp = request(
                params["method"],
                params["url"],
                headers=_headers(params, ctx),
                timeout=_timeout(params, ctx),
                read=BODY_SEARCHED if wanted else 0,
            )
        except outbound.Refused as exc:  # never "down as expected": nothing was tried
            return StepResult(False, f"{params['method']} {params['url']}: {exc}")
        except (TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            line = f"{params['method']} {params['url']}: no answer ({reason})"
            return StepResult(params["expect"] == "down", line)
        line = _status_line(params["method"], params["url"], resp)
        answered = resp.status in expected
        if wanted:
            found = wanted.encode() in resp.body
            line += f"; expected text {'found' if found else 'NOT found'}"
            answered = answered and found
        if params["expect"] == "down":
            return StepResult(
                not answered, line + (" (still up)" if answered else " (down as expected)")
            )
        if resp.status not in expected:
            line += f"; expected {', '.join(map(str, expected))}"
        return StepResult(answered, line)


class Webhook(Kind):
    name = "webhook"
    title = "Webhook"
    side_effects = True
    secret_label = "bearer token (optional)"
    endpoint_params = ("url",)
    default_timeout = 60.0
    params = {
        "url": Param((str,), check=http_url, help="http:// or https:// URL"),
        "method": Param((str,), "POST", one_of(*METHODS)),
        "json": Param((dict, list), None, help="JSON body"),
        "expect_status": Param((int, list), [200, 201, 202, 204], status_list),
        "request_timeout": Param((float,), 10.0, positive),
        "headers": Param((dict,), None, _check_headers),
    }

    def describe(self, params):
        return f"{params.get('method', 'POST')} {params.get('url')}" + (
            " with a JSON body" if params.get("json") is not None else ""
        )

    def run(self, params, ctx):
        headers = _headers(params, ctx)
        body = None
        if params.get("json") is not None:
            body = json.dumps(params["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            resp = request(
                params["method"],
                params["url"],
                headers=headers,
                body=body,
                timeout=_timeout(params, ctx),
            )
        except outbound.Refused as exc:
            return StepResult(False, f"{params['method']} {params['url']}: {exc}")
        except (TimeoutError, OSError) as exc:
            return StepResult(
                False,
                f"{params['method']} {params['url']}: no answer ({getattr(exc, 'reason', exc)})",
            )
        expected = _expected(params["expect_status"])
        line = _status_line(params["method"], params["url"], resp)
        if resp.status not in expected:
            line += f"; expected {', '.join(map(str, expected))}"
        return StepResult(resp.status in expected, line)
