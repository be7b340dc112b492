"""Pages and actions as each persona, plus the wrong method; live runs need a manager and the name."""

import pytest
from django.test import Client
from django.urls import reverse

from dr_portal.models import AuditEntry
from recovery.failover.models import FailoverRun, Runbook
from tests.factories import ContactFactory, RunbookFactory, SystemFactory
from tests.failover.runs import run_inline

pytestmark = pytest.mark.django_db
STEPS = [
    {
        "name": "primary down",
        "kind": "http_check",
        "params": {
            "url": "http://127.0.0.1:9/health/live",
            "expect": "down",
            "request_timeout": 0.5,
        },
    },
    {
        "name": "dns",
        "kind": "dns_update",
        "params": {"zone_id": "Z1", "name": "app.example.com", "values": ["10.0.2.100"]},
        "rollback": [
            {
                "name": "dns back",
                "kind": "dns_update",
                "params": {"zone_id": "Z1", "name": "app.example.com", "values": ["10.0.1.100"]},
            }
        ],
    },
    {"name": "approve", "kind": "manual", "params": {"instruction": "Tell the team"}},
]


@pytest.fixture
def runbook():
    return RunbookFactory(steps=STEPS, system=SystemFactory(name="tool-hub"), name="App failover")


def url(name, *args):
    return reverse(f"recovery:failover:{name}", args=args)


def status_for(client, path, method="get", data=None):
    return getattr(client, method)(path, data or {}).status_code


READ_PAGES = ["index", "runbook", "run", "run_progress", "run_print"]


def test_anonymous_is_sent_to_login(runbook):
    run = FailoverRun.start(runbook, "test")
    for path in [url("index"), url("runbook", runbook.pk), url("run", run.pk)]:
        response = Client().get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_viewer_reads_every_page_but_changes_nothing(viewer_client, runbook):
    run = FailoverRun.start(runbook, "test")
    for name, args in [
        ("index", ()),
        ("runbook", (runbook.pk,)),
        ("run", (run.pk,)),
        ("run_progress", (run.pk,)),
        ("run_print", (run.pk,)),
    ]:
        assert status_for(viewer_client, url(name, *args)) == 200, name
    assert status_for(viewer_client, url("start_run", runbook.pk)) == 403
    assert status_for(viewer_client, url("start_run", runbook.pk), "post", {"mode": "test"}) == 403
    assert status_for(viewer_client, url("run_cancel", run.pk), "post") == 403
    step_run = run.step_runs.get(kind="manual")
    assert status_for(viewer_client, url("step_confirm", run.pk, step_run.pk), "post") == 403
    assert status_for(viewer_client, url("runbook_create")) == 403
    assert status_for(viewer_client, url("step_create", runbook.pk)) == 403
    assert FailoverRun.objects.count() == 1


def test_runbook_page_shows_steps_rollbacks_badge_and_contacts(viewer_client, runbook):
    ContactFactory(name="Dana DBA", role="DBA", email="dana@example.com")
    html = viewer_client.get(url("runbook", runbook.pk)).content.decode()
    assert "needs verification" in html
    assert "UPSERT A app.example.com → 10.0.2.100 (TTL 60) in zone Z1" in html
    assert "dns back" in html and "(rollback)" in html
    assert "Dana DBA" in html


def test_list_page_query_count_does_not_grow_with_runbooks(
    viewer_client, django_assert_max_num_queries
):
    system = SystemFactory(name="tool-hub")
    for i in range(5):
        run_inline(
            RunbookFactory(
                steps=[{"name": "w", "kind": "wait", "params": {"seconds": 0}}],
                system=system,
                name=f"rb {i}",
            )
        )
    with django_assert_max_num_queries(9):  # 8 + the destination banner's one query
        response = viewer_client.get(url("index"))
    assert response.content.decode().count("verified") >= 5


def test_operator_starts_a_test_run(operator_client, runbook, django_capture_on_commit_callbacks):
    assert status_for(operator_client, url("start_run", runbook.pk)) == 200
    with django_capture_on_commit_callbacks() as callbacks:
        response = operator_client.post(url("start_run", runbook.pk), {"mode": "test"})
    run = FailoverRun.objects.get()
    assert response.status_code == 302 and response["Location"] == url("run", run.pk)
    assert run.mode == "test" and run.requested_by.username == "otto" and len(callbacks) == 1
    assert AuditEntry.objects.filter(action="start test failover").exists()


def test_operator_cannot_start_a_live_run(operator_client, runbook):
    response = operator_client.post(
        url("start_run", runbook.pk), {"mode": "live", "confirm_name": "tool-hub"}
    )
    assert response.status_code == 200
    assert "A live failover needs the manager role." in response.content.decode()
    assert not FailoverRun.objects.exists()


def test_live_run_needs_the_system_name_typed(manager_client, runbook):
    response = manager_client.post(
        url("start_run", runbook.pk), {"mode": "live", "confirm_name": "tool hub"}
    )
    assert response.status_code == 200
    assert (
        "Type &#x27;tool-hub&#x27; exactly to confirm a live failover." in response.content.decode()
    )
    assert not FailoverRun.objects.exists()
    response = manager_client.post(
        url("start_run", runbook.pk), {"mode": "live", "confirm_name": "tool-hub"}
    )
    assert response.status_code == 302
    assert FailoverRun.objects.get().mode == "live"


def test_a_second_live_run_of_the_system_is_refused_with_a_message(manager_client, runbook):
    FailoverRun.start(runbook, "live")
    other = RunbookFactory(steps=STEPS, system=runbook.system, name="Other")
    response = manager_client.post(
        url("start_run", other.pk), {"mode": "live", "confirm_name": "tool-hub"}
    )
    assert response.status_code == 200
    assert "already queued or running" in response.content.decode()
    assert FailoverRun.objects.count() == 1


def test_progress_fragment_polls_while_active_and_stops_with_286(viewer_client, runbook):
    run = FailoverRun.start(runbook, "test")
    response = viewer_client.get(url("run_progress", run.pk))
    assert response.status_code == 200 and 'hx-trigger="every 2s"' in response.content.decode()
    run.cancel()
    response = viewer_client.get(url("run_progress", run.pk))
    assert response.status_code == 286 and "hx-trigger" not in response.content.decode()


def test_finished_run_page_shows_skipped_steps_rto_split_and_prints(viewer_client, monkeypatch):
    runbook = RunbookFactory(
        steps=[
            {
                "name": "dns",
                "kind": "dns_update",
                "params": {"zone_id": "Z1", "name": "app.example.com", "values": ["10.0.2.100"]},
            },
            {"name": "verify", "kind": "wait", "params": {"seconds": 0}, "verification": True},
        ]
    )
    run = run_inline(runbook, mode="test")
    html = viewer_client.get(url("run", run.pk)).content.decode()
    assert "test mode: would UPSERT A app.example.com" in html
    assert "Automated steps" in html and "Waiting for people" in html and "Retries" in html
    assert "Measured RTO" in html
    printed = viewer_client.get(url("run_print", run.pk)).content.decode()
    assert 'media="print"' in printed and "Printed from DR Portal" in printed


def test_wrong_methods_on_actions(manager_client, runbook):
    run = FailoverRun.start(runbook, "test")
    step_run = run.step_runs.get(kind="manual")
    step = runbook.steps.first()
    assert status_for(manager_client, url("run_cancel", run.pk)) == 405
    assert status_for(manager_client, url("step_confirm", run.pk, step_run.pk)) == 405
    assert status_for(manager_client, url("step_delete", runbook.pk, step.pk)) == 405
    run.refresh_from_db()
    assert run.status == "queued" and runbook.steps.filter(pk=step.pk).exists()


def test_confirm_only_a_waiting_manual_step_and_only_once(operator_client, runbook):
    run = FailoverRun.start(runbook, "test")
    step_run = run.step_runs.get(kind="manual")
    operator_client.post(url("step_confirm", run.pk, step_run.pk))
    step_run.refresh_from_db()
    assert step_run.confirmed_at is None  # still pending: nothing to confirm yet
    step_run.status = "waiting"
    step_run.save()
    operator_client.post(url("step_confirm", run.pk, step_run.pk))
    step_run.refresh_from_db()
    first = step_run.confirmed_at
    assert first and step_run.confirmed_by.username == "otto"
    operator_client.post(url("step_confirm", run.pk, step_run.pk))
    step_run.refresh_from_db()
    assert step_run.confirmed_at == first


def test_operator_cancels_a_test_run_but_only_a_manager_cancels_a_live_one(
    operator_client, manager_client, runbook
):
    live = FailoverRun.start(runbook, "live")
    assert status_for(operator_client, url("run_cancel", live.pk), "post") == 403
    live.refresh_from_db()
    assert live.status == "queued"
    assert status_for(manager_client, url("run_cancel", live.pk), "post") == 302
    live.refresh_from_db()
    assert live.status == "cancelled"


def test_manager_creates_a_runbook_from_each_template(manager_client):
    system = SystemFactory(name="tool-hub")
    for key, title in [
        ("pg_standby_promotion", "PostgreSQL standby promotion"),
        (
            "active_passive",
            "Active-passive application failover (health check, DNS, load balancer)",
        ),
        ("network_outage", "Network outage recovery (checks, reconnect, resume)"),
    ]:
        response = manager_client.post(url("from_template"), {"system": system.pk, "template": key})
        assert response.status_code == 302, response.content.decode()[:2000]
        runbook = Runbook.objects.get(name=title)
        assert runbook.steps.exists() and runbook.template == key and runbook.config_hash
    assert (
        Runbook.objects.get(template="active_passive")
        .steps.filter(rollback_of__isnull=False)
        .count()
        == 2
    )
    # the same name twice is refused with a message
    response = manager_client.post(
        url("from_template"), {"system": system.pk, "template": "network_outage"}
    )
    assert (
        response.status_code == 200 and "already has a runbook named" in response.content.decode()
    )


def test_operator_cannot_create_or_edit_runbooks(operator_client, runbook):
    assert (
        status_for(operator_client, url("from_template"), "post", {"template": "network_outage"})
        == 403
    )
    assert status_for(operator_client, url("runbook_edit", runbook.pk), "post", {}) == 403
    assert status_for(operator_client, url("step_create", runbook.pk), "post", {}) == 403


def test_manager_edits_a_step_and_the_runbook_needs_verification_again(manager_client, runbook):
    step = runbook.steps.get(name="primary down")
    before = runbook.config_hash
    response = manager_client.post(
        url("step_edit", runbook.pk, step.pk),
        {
            "order": 1,
            "name": "primary down",
            "kind": "http_check",
            "params": '{"url": "http://127.0.0.1:9/health/ready", "expect": "down"}',
            "on_failure": "stop",
            "retries": 2,
            "retry_delay": "5s",
            "timeout": "1m",
            "secret": "bearer-xyz-123",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    runbook.refresh_from_db()
    step.refresh_from_db()
    assert runbook.config_hash != before
    assert step.retries == 2 and step.retry_delay.total_seconds() == 5
    assert step.secret.reveal() == "bearer-xyz-123"
    html = manager_client.get(url("step_edit", runbook.pk, step.pk)).content.decode()
    assert "bearer-xyz-123" not in html


def test_runbook_page_warns_when_its_steps_could_outlast_the_task_timeout(viewer_client, settings):
    runbook = RunbookFactory(
        steps=[
            {
                "name": "long",
                "kind": "manual",
                "timeout": "5h",
                "params": {"instruction": "wait for the vendor"},
            }
        ]
    )
    assert (
        "longer than the worker task timeout"
        in viewer_client.get(url("runbook", runbook.pk)).content.decode()
    )


def test_start_page_warns_that_an_unverified_runbook_was_never_tested(manager_client, runbook):
    html = manager_client.get(url("start_run", runbook.pk)).content.decode()
    assert "has not passed a run yet" in html


def test_progress_counts_only_the_steps_that_ran(viewer_client, tmp_path):
    """Issue 18: "Progress 5 of 5" was shown when one step ran and the rest never did."""
    runbook = RunbookFactory(
        steps=[
            {"name": "fails", "kind": "command", "params": {"args": ["false"]}},
            *({"name": f"after {i}", "kind": "wait", "params": {"seconds": 0}} for i in range(4)),
        ]
    )
    run = run_inline(runbook, mode="live")
    assert run.status == "failed"
    html = viewer_client.get(url("run", run.pk)).content.decode()
    assert "1 of 5 steps ran" in html and "4 not run" in html
