"""app_stop and app_start: stop or start the application (a command or a webhook), then
prove it with a URL of its own that must stop answering (app_stop) or answer (app_start)
within the step's timeout.

A command is a program run with an argument list, never a shell: an app step with a
command is superuser-only like a command step (registry.superuser_only). The webhook and
the check go through the outbound guard like http_check and webhook steps.
"""

from __future__ import annotations

import time

from dr_portal.lib import outbound

from .base import (
    Context,
    Kind,
    Param,
    StepResult,
    http_url,
    one_of,
    positive,
    status_list,
    str_list,
)
from .http import METHODS, Webhook, _check_headers, _expected, request
from .local import Command

POLL_S = 0.5


def _check_env(value):
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return "must map variable names to text values"
    return None


class AppControl(Kind):
    side_effects = True
    secret_label = "bearer token for the webhook, or $DR_STEP_SECRET for the command (optional)"
    endpoint_params = ("webhook", "command")
    default_timeout = 120.0
    want_up = True
    params = {
        "command": Param((list,), None, str_list, help="program and arguments; no shell"),
        "env": Param((dict,), None, _check_env, help="for the command"),
        "expect_exit": Param((int,), 0, help="the command's exit status"),
        "webhook": Param((str,), None, http_url, help="URL to call instead of a command"),
        "method": Param((str,), "POST", one_of(*METHODS), help="the webhook's method"),
        "headers": Param((dict,), None, _check_headers),
        "check_url": Param((str,), check=http_url, help="the application's own URL"),
        "expect_status": Param((int, list), 200, status_list, help="what 'answering' means"),
        "request_timeout": Param((float,), 5.0, positive, help="seconds per check request"),
    }

    def validate(self, params):
        if bool(params.get("command")) == bool(params.get("webhook")):
            return ["give either params.command or params.webhook (one of them)"]
        return []

    def _action(self, params) -> str:
        if params.get("command"):
            return "run " + " ".join(params["command"])
        return f"{params.get('method', 'POST')} {params.get('webhook')}"

    def _state(self) -> str:
        return "answers" if self.want_up else "stops answering"

    def describe(self, params):
        return f"{self._action(params)}, then wait until {params.get('check_url')} {self._state()}"

    def affects(self, params, check):
        return check.kind == "http_check" and check.params.get("url") == params.get("check_url")

    def _act(self, params, ctx) -> StepResult:
        if params.get("command"):
            return Command().run(
                {"args": params["command"], "env": params.get("env"),
                 "expect_exit": params["expect_exit"]},
                ctx,
            )  # fmt: skip
        return Webhook().run(
            {"url": params["webhook"], "method": params["method"], "json": None,
             "expect_status": [200, 201, 202, 204], "request_timeout": 10.0,
             "headers": params.get("headers") or {}},
            ctx,
        )  # fmt: skip

    def _answers(self, params, ctx: Context) -> tuple[bool, str]:
        try:
            resp = request(
                "GET",
                params["check_url"],
                timeout=max(0.05, min(params["request_timeout"], ctx.remaining())),
            )
        except outbound.Refused:
            raise
        except (TimeoutError, OSError) as exc:
            return False, f"no answer ({getattr(exc, 'reason', exc)})"
        return resp.status in _expected(params["expect_status"]), f"answered {resp.status}"

    def run(self, params, ctx):
        acted = self._act(params, ctx)
        if not acted.ok:
            return acted
        started = time.monotonic()
        try:
            while True:
                up, seen = self._answers(params, ctx)
                if up == self.want_up:
                    took = time.monotonic() - started
                    return StepResult(
                        True,
                        f"{acted.output}\n{params['check_url']} {seen}: "
                        f"{'up' if up else 'down'} after {took:.1f}s",
                    )
                ctx.sleep(POLL_S)
        except outbound.Refused as exc:
            return StepResult(False, f"{acted.output}\n{params['check_url']}: {exc}")


class AppStop(AppControl):
    name = "app_stop"
    title = "Stop the application"
    want_up = False


class AppStart(AppControl):
    name = "app_start"
    title = "Start the application"
    want_up = True
    verification = True  # the application answering again is the service back
