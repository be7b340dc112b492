"""http_check and webhook against a real HTTP server started by the test."""

import json
import time

import pytest

from recovery.failover.steps import parse_steps, run_steps
from tests.failover.servers import start_http_server


@pytest.fixture
def http():
    server = start_http_server()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def one(defn, **kw):
    result = run_steps(parse_steps([defn], allow_command=False), **kw)
    return result, result.outcomes[0]


def test_http_check_passes_on_the_expected_status(http):
    result, step = one(
        {"name": "live", "kind": "http_check", "params": {"url": f"{http.url}/health/live"}}
    )
    assert result.status == "succeeded" and step.status == "succeeded"
    assert "-> 200" in step.output
    assert http.recorder.requests[0][:2] == ("GET", "/health/live")


def test_http_check_retries_with_delay_until_the_service_answers(http):
    http.recorder.script = [(503, "down", 0), (503, "down", 0)]
    started = time.monotonic()
    result, step = one(
        {
            "name": "live",
            "kind": "http_check",
            "retries": 3,
            "retry_delay": 0.2,
            "params": {"url": f"{http.url}/health/live"},
        }
    )
    took = time.monotonic() - started
    assert step.status == "succeeded" and step.attempts == 3
    assert len(http.recorder.requests) == 3
    assert took >= 0.4  # two delays of 0.2 s
    assert step.retry_s >= 0.4 and result.retry_s == step.retry_s
    assert "attempt 1/4" in step.output and "expected 200" in step.output


def test_http_check_fails_after_its_retries(http):
    http.recorder.default = (500, "broken", 0)
    result, step = one(
        {
            "name": "live",
            "kind": "http_check",
            "retries": 1,
            "retry_delay": 0.05,
            "params": {"url": f"{http.url}/", "expect_status": [200, 204]},
        }
    )
    assert result.status == "failed" and step.status == "failed"
    assert step.attempts == 2 and len(http.recorder.requests) == 2
    assert result.error == "step 'live' failed"


def test_a_slow_answer_is_cut_by_the_request_timeout_and_the_step_timeout_holds(http):
    http.recorder.default = (200, "late", 3.0)
    started = time.monotonic()
    result, step = one(
        {
            "name": "slow",
            "kind": "http_check",
            "timeout": 1.0,
            "retries": 5,
            "retry_delay": 0.1,
            "params": {"url": f"{http.url}/", "request_timeout": 0.3},
        }
    )
    took = time.monotonic() - started
    assert step.status == "timed_out"
    assert took < 2.0  # never waits for the 3 s answers, nor for all 6 attempts past the deadline
    assert "timed out" in step.output or "timeout" in step.output


def test_http_check_expecting_down_passes_when_nothing_listens():
    result, step = one(
        {
            "name": "primary down",
            "kind": "http_check",
            "params": {
                "url": "http://127.0.0.1:9/health/live",
                "expect": "down",
                "request_timeout": 1,
            },
        }
    )
    assert step.status == "succeeded", step.output
    assert "no answer" in step.output


def test_http_check_expecting_down_fails_while_the_service_answers(http):
    result, step = one(
        {
            "name": "primary down",
            "kind": "http_check",
            "params": {"url": f"{http.url}/", "expect": "down"},
        }
    )
    assert step.status == "failed" and "still up" in step.output


def test_webhook_sends_json_and_the_bearer_token_which_never_reaches_the_output(http):
    token = "s3cr3t-bearer-token-123"
    http.recorder.default = (200, f"echo: your token was {token}", 0)
    specs = parse_steps(
        [
            {
                "name": "resume",
                "kind": "webhook",
                "secret": token,
                "params": {
                    "url": f"{http.url}/api/executions/resume",
                    "json": {"status": "suspended"},
                },
            }
        ],
        allow_command=False,
    )
    logged = []

    class Hooks:
        def started(self, *a):
            pass

        def finished(self, outcome):
            logged.append(outcome.output)

        def cancelled(self):
            return False

        def log(self, line):
            logged.append(line)

    result = run_steps(specs, Hooks(), secrets=[token])
    step = result.outcomes[0]
    assert step.status == "succeeded"
    method, path, headers, body = http.recorder.requests[0]
    assert (method, path) == ("POST", "/api/executions/resume")
    assert headers["Authorization"] == f"Bearer {token}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "suspended"}
    assert token not in step.output and "echo" not in step.output  # the body is never kept
    assert all(token not in line for line in logged)


def test_webhook_fails_on_an_unexpected_status(http):
    http.recorder.default = (401, "unauthorized", 0)
    result, step = one(
        {
            "name": "reconnect",
            "kind": "webhook",
            "params": {"url": f"{http.url}/api/mcp/servers", "json": {}},
        }
    )
    assert step.status == "failed" and "-> 401" in step.output
