"""Honest test-mode evidence: a test run that skipped side-effect steps rehearses a runbook,
it does not verify it; checks that could pass only after a skipped step are "not proven",
not failed; coverage counts such a run as partial."""

import pytest
from django.urls import reverse

from drills import coverage
from recovery.failover.steps import KINDS, parse_steps, run_steps
from tests.factories import RunbookFactory
from tests.failover.runs import run_inline
from tests.failover.servers import start_http_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    """Two answers on one server: /ok 200, /down 503."""
    server = start_http_server()
    yield server
    server.shutdown()
    server.server_close()


def _dns_to(name):
    """A DNS change test mode skips (no test_params): nothing is called."""
    return {
        "name": "Point DNS at the backup",
        "kind": "dns_update",
        "params": {"zone_id": "Z1", "name": name, "values": ["127.0.0.1"]},
    }


def _check(name, url, **extra):
    return {"name": name, "kind": "http_check", "params": {"url": url}, **extra}


def _failing(server):
    server.recorder.default = (503, "down", 0.0)


def test_check_of_the_name_a_skipped_dns_change_moves_is_not_proven_not_failed(site):
    _failing(site)
    port = site.server_address[1]
    runbook = RunbookFactory(
        steps=[
            _dns_to("localhost."),
            _check(
                "Traffic flows to the backup",
                f"http://localhost:{port}/health",
                verification=True,
                retries=3,
                retry_delay=1,
            ),
        ]
    )
    run = run_inline(runbook, mode="test")

    assert run.status == "succeeded", run.error
    assert (run.skipped_effects, run.unproven_checks) == (1, 1)
    assert run.rehearsed
    check = run.step_runs.get(name="Traffic flows to the backup")
    assert check.status == "unproven"
    assert "'Point DNS at the backup'" in check.output and "not proven" in check.output
    # It cannot pass yet: one attempt, not four.
    assert check.attempts == 1 and len(site.recorder.requests) == 1
    # An unproven check proves nothing: no RTO.
    assert run.rto is None and "RTO not measured" in run.error


@pytest.mark.parametrize(
    ("answer", "path", "host", "expect"),
    [
        (503, "/health", "127.0.0.1", "up"),  # another host than the DNS name
        (200, "/health", "localhost", "down"),  # a precondition: the old site must be down
    ],
)
def test_unrelated_or_precondition_checks_still_fail_a_test_run(site, answer, path, host, expect):
    """Only checks a skipped step affects are excused."""
    site.recorder.default = (answer, "", 0.0)
    url = f"http://{host}:{site.server_address[1]}{path}"
    check = {"name": "Check", "kind": "http_check", "params": {"url": url, "expect": expect}}
    run = run_inline(RunbookFactory(steps=[_dns_to("localhost"), check]))
    assert run.status == "failed"
    assert run.step_runs.get(name="Check").status == "failed"
    assert run.unproven_checks == 0


def test_a_check_with_test_params_runs_against_its_test_target_and_proves_it(site):
    port = site.server_address[1]
    site.recorder.default = (200, "ok", 0.0)
    runbook = RunbookFactory(
        steps=[
            _dns_to("localhost"),
            _check(
                "Traffic flows to the backup",
                "http://localhost:1/health",
                verification=True,
                test_params={"url": f"http://127.0.0.1:{port}/test-health"},
            ),
        ]
    )
    run = run_inline(runbook, mode="test")
    assert run.status == "succeeded", run.error
    check = run.step_runs.get(name="Traffic flows to the backup")
    assert check.status == "succeeded" and "test environment parameters" in check.output
    assert site.recorder.requests[0][1] == "/test-health"
    assert (run.skipped_effects, run.unproven_checks) == (1, 0)
    assert run.rto is not None


def test_a_run_that_skipped_side_effects_does_not_verify_the_runbook(site, viewer_client):
    runbook = RunbookFactory(
        steps=[
            {"name": "Restart", "kind": "command", "params": {"args": ["true"]}},
            _check("Up", f"{site.url}/ok", verification=True),
        ]
    )
    assert runbook.verification() == ("needs_verification", "needs verification")

    rehearsal = run_inline(runbook, mode="test")
    assert rehearsal.status == "succeeded" and rehearsal.skipped_effects == 1
    runbook.refresh_from_db()
    assert runbook.last_verifying_run() is None
    text = "verified in test mode — 1 side-effect step not exercised"
    assert runbook.verification() == ("partial", text)
    assert not runbook.needs_verification
    for url in (reverse("recovery:failover:index"), runbook.get_absolute_url()):
        page = viewer_client.get(url).content.decode()
        assert text in page, url
        assert ">verified<" not in page, url
    run_page = viewer_client.get(rehearsal.get_absolute_url()).content.decode()
    assert "passed with skips" in run_page

    live = run_inline(runbook, mode="live")
    assert live.status == "succeeded" and not live.rehearsed
    assert runbook.last_verifying_run() == live
    assert runbook.verification() == ("succeeded", "verified")
    assert ">verified<" in viewer_client.get(reverse("recovery:failover:index")).content.decode()


def test_coverage_counts_a_rehearsal_as_partial_and_a_full_run_as_passed(site):
    runbook = RunbookFactory(
        steps=[
            {"name": "Restart", "kind": "command", "params": {"args": ["true"]}},
            _check("Up", f"{site.url}/ok", verification=True),
        ]
    )

    def cell():
        _types, rows = coverage.build()
        ((system, cells),) = [r for r in rows if r[0].pk == runbook.system_id]
        types = [value for value, _ in _types]
        return cells[types.index("single_node")]

    run_inline(runbook, mode="test")
    assert cell().verdict == "partial" and cell().css == "cell-partial"
    run_inline(runbook, mode="live")
    assert cell().verdict == "passed"


def test_engine_counts_what_test_mode_left_out_without_django():
    specs = parse_steps(
        [
            {"name": "Promote", "kind": "pg_promote", "params": {"host": "db2", "port": 5432}},
            {"name": "Rollback-free wait", "kind": "wait", "params": {"seconds": 0}},
        ],
        allow_command=True,
    )
    result = run_steps(specs, test_mode=True)
    assert result.status == "succeeded"
    assert (result.skipped_effects, result.unproven_checks) == (1, 0)


def test_promotion_affects_checks_of_the_same_server_only():
    promote, same, other, down = parse_steps(
        [
            {"name": "p", "kind": "pg_promote", "params": {"host": "db2", "port": 5433}},
            {
                "name": "s",
                "kind": "sql_check",
                "params": {
                    "host": "db2",
                    "port": 5433,
                    "query": "SELECT pg_is_in_recovery()",
                    "expect": "false",
                },
            },
            {"name": "o", "kind": "pg_ready", "params": {"host": "db1", "port": 5433}},
            {
                "name": "d",
                "kind": "pg_ready",
                "params": {"host": "db2", "port": 5433, "expect": "down"},
            },
        ],
        allow_command=True,
    )
    kind = KINDS["pg_promote"]
    assert kind.affects(promote.params, same)
    assert not kind.affects(promote.params, other)
    # A precondition (expect down) is never excused by the runner, whatever affects says.
    assert kind.affects(promote.params, down)
