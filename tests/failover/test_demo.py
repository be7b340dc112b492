"""The demo runbook: created once, and its test run succeeds against a live health endpoint."""

import io

import pytest

from recovery.failover import demo
from recovery.failover.models import Runbook
from tests.factories import SystemFactory
from tests.failover.runs import run_inline
from tests.failover.servers import start_http_server

pytestmark = pytest.mark.django_db


def test_demo_runbook_is_idempotent_and_its_test_run_passes():
    SystemFactory(name="Tool Hub")
    server = start_http_server()
    try:
        demo.load(io.StringIO(), base_url=server.url)
        demo.load(io.StringIO(), base_url=server.url)
        runbook = Runbook.objects.get(name=demo.DEMO_NAME)
        runbook.steps.filter(retries__gt=0).update(retries=0)
        run = run_inline(runbook, mode="test")
    finally:
        server.shutdown()
        server.server_close()
    assert run.status == "succeeded", run.error
    assert [s.status for s in run.step_runs.order_by("position")] == [
        "succeeded",
        "skipped",
        "skipped",
        "succeeded",
    ]
    assert run.rto is not None and run.verdict == "met"


def test_the_demo_says_when_the_outbound_guard_would_refuse_its_checks(settings):
    SystemFactory(name="Tool Hub")
    settings.DR_OUTBOUND_ALLOW = []
    out = io.StringIO()
    demo.load(out)
    assert "set DR_OUTBOUND_ALLOW=127.0.0.1" in out.getvalue()
