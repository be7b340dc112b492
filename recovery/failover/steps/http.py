"""http_check and webhook: plain HTTP with urllib, no redirects followed (like curl without -L)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .base import Context, Kind, Param, StepResult, http_url, one_of, positive, status_list

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
BODY_SHOWN = 2000


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is the answer, as curl without -L sees it


_opener = urllib.request.build_opener(_NoRedirect)


def request(method, url, *, headers=None, body: bytes | None = None, timeout: float):
    """(status, body text) of one request, or raise OSError on a network failure."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read(BODY_SHOWN * 2).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read(BODY_SHOWN * 2).decode("utf-8", "replace") if exc.fp else ""
        return exc.code, text


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
    secret_label = "bearer token (optional)"
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

    def describe(self, params):
        want = (
            "is down"
            if params.get("expect") == "down"
            else f"answers {params.get('expect_status', 200)}"
        )
        return f"check that {params.get('method', 'GET')} {params.get('url')} {want}"

    def run(self, params, ctx):
        expected = _expected(params["expect_status"])
        try:
            status, text = request(
                params["method"],
                params["url"],
                headers=_headers(params, ctx),
                timeout=_timeout(params, ctx),
            )
        except (TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            line = f"{params['method']} {params['url']}: no answer ({reason})"
            return StepResult(params["expect"] == "down", line)
        line = f"{params['method']} {params['url']} -> {status}"
        answered = status in expected
        if answered and params.get("body_contains") and params["body_contains"] not in text:
            answered = False
            line += f" but the body lacks {params['body_contains']!r}"
        if params["expect"] == "down":
            return StepResult(
                not answered, line + (" (still up)" if answered else " (down as expected)")
            )
        if not answered:
            line += f"; expected {', '.join(map(str, expected))}"
        return StepResult(answered, f"{line}\n{text[:BODY_SHOWN]}".rstrip())


class Webhook(Kind):
    name = "webhook"
    title = "Webhook"
    side_effects = True
    secret_label = "bearer token (optional)"
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
            status, text = request(
                params["method"],
                params["url"],
                headers=headers,
                body=body,
                timeout=_timeout(params, ctx),
            )
        except (TimeoutError, OSError) as exc:
            return StepResult(
                False,
                f"{params['method']} {params['url']}: no answer ({getattr(exc, 'reason', exc)})",
            )
        expected = _expected(params["expect_status"])
        line = f"{params['method']} {params['url']} -> {status}"
        if status not in expected:
            line += f"; expected {', '.join(map(str, expected))}"
        return StepResult(status in expected, f"{line}\n{text[:BODY_SHOWN]}".rstrip())
