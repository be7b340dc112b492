"""app_stop / app_start (a webhook or a command, then a URL that must stop or start
answering) and the restore step's definition, without a database."""

import sys

import pytest

from recovery.failover.steps import parse_step, parse_steps, run_steps, superuser_only
from tests.failover.servers import start_http_server


@pytest.fixture
def http():
    server = start_http_server()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def one(defn, allow_command=False):
    result = run_steps(parse_steps([defn], allow_command=allow_command))
    return result.outcomes[0]


def test_app_stop_fails_while_the_application_keeps_answering(http):
    step = one(
        {
            "name": "stop",
            "kind": "app_stop",
            "timeout": 1.5,
            "params": {"webhook": f"{http.url}/stop", "check_url": f"{http.url}/"},
        }
    )
    assert step.status == "timed_out"
    assert http.recorder.requests[0][:2] == ("POST", "/stop")


def test_app_start_runs_its_command_then_waits_for_the_url(http):
    step = one(
        {
            "name": "start",
            "kind": "app_start",
            "params": {"command": [sys.executable, "-c", "print('started')"],
                       "check_url": f"{http.url}/"},
        },
        allow_command=True,
    )  # fmt: skip
    assert step.status == "succeeded", step.output
    assert "started" in step.output and "answered 200: up after" in step.output
    assert step.spec.verification  # the application answering again ends the RTO


def test_a_failing_action_fails_before_the_check(http):
    http.recorder.default = (500, "broken", 0.0)
    step = one(
        {
            "name": "stop",
            "kind": "app_stop",
            "params": {"webhook": f"{http.url}/stop", "check_url": f"{http.url}/"},
        }
    )
    assert step.status == "failed" and "-> 500" in step.output
    assert len(http.recorder.requests) == 1  # no check after the failed webhook


def test_a_command_needs_a_superuser_a_webhook_does_not():
    command = {"command": ["systemctl", "start", "app"], "check_url": "http://app.example/"}
    webhook = {"webhook": "http://deploy.example/start", "check_url": "http://app.example/"}
    _, errors = parse_step({"name": "s", "kind": "app_start", "params": command}, "step 1",
                           allow_command=False)  # fmt: skip
    assert errors == [
        "step 1 (s): only superusers may create or edit app_start with a command steps"
    ]
    spec, errors = parse_step({"name": "s", "kind": "app_start", "params": webhook}, "step 1",
                              allow_command=False)  # fmt: skip
    assert errors == [] and spec.side_effects  # app steps always change something
    assert superuser_only("app_stop", command) and not superuser_only("app_stop", webhook)
    assert superuser_only("app_stop", webhook, {"command": ["true"]})  # test_params too


@pytest.mark.parametrize(
    "params, problem",
    [
        ({"check_url": "http://a.example/"}, "give either params.command or params.webhook"),
        ({"command": ["true"], "webhook": "http://a.example/", "check_url": "http://a.example/"},
         "give either params.command or params.webhook"),
        ({"webhook": "ftp://a.example/", "check_url": "http://a.example/"}, "scheme 'ftp'"),
    ],
)  # fmt: skip
def test_app_step_definitions_are_checked(params, problem):
    _, errors = parse_step({"name": "s", "kind": "app_stop", "params": params}, "step",
                           allow_command=True)  # fmt: skip
    assert any(problem in e for e in errors), errors


def test_restore_step_definition():
    spec, errors = parse_step(
        {"name": "r", "kind": "restore", "params": {"source": "db", "target": "app-db"}},
        "step",
        allow_command=False,
    )
    assert errors == [] and spec.params["backup"] == "newest" and spec.params["overwrite"] is False
    _, errors = parse_step(
        {"name": "r", "kind": "restore",
         "params": {"source": "db", "target": "t", "backup": "yesterday"}},
        "step",
        allow_command=False,
    )  # fmt: skip
    assert any("'newest'" in e for e in errors), errors
