"""Bad step definitions are refused with a clear message and nothing changes."""

import pytest
from django.urls import reverse

from recovery.failover.models import RunbookStep
from recovery.failover.steps import StepDefinitionError, parse_steps
from tests.factories import RunbookFactory, UserFactory


def errors_of(steps, allow_command=False):
    with pytest.raises(StepDefinitionError) as exc:
        parse_steps(steps, allow_command=allow_command)
    return exc.value.errors


def test_unknown_kind_is_named_with_the_known_ones():
    [error] = errors_of([{"name": "x", "kind": "ssh"}])
    assert error.startswith("step 1 (x): unknown kind 'ssh'; use one of http_check, pg_ready")


def test_missing_fields_are_each_reported_with_their_place():
    errors = errors_of(
        [
            {"name": "ok", "kind": "wait", "params": {"seconds": 1}},
            {"kind": "http_check", "params": {}},
            {
                "name": "dns",
                "kind": "dns_update",
                "params": {"zone_id": "Z1", "name": "a.example.com"},
            },
        ]
    )
    assert "step 2: name is required" in errors
    assert "step 2: params.url is required for a http_check step" in errors
    assert "step 3 (dns): params.values is required for a dns_update step" in errors


def test_only_http_and_https_urls_are_accepted():
    for url in (
        "ftp://files.example.com/x",
        "file:///etc/passwd",
        "gopher://x",
        "example.com/health",
    ):
        [error] = errors_of([{"name": "c", "kind": "http_check", "params": {"url": url}}])
        assert "is not allowed; use http:// or https://" in error, url
    [error] = errors_of(
        [{"name": "w", "kind": "webhook", "params": {"url": "javascript:alert(1)"}}]
    )
    assert "scheme 'javascript' is not allowed" in error
    parse_steps(
        [{"name": "c", "kind": "http_check", "params": {"url": "https://x.example/h"}}],
        allow_command=False,
    )


def test_wrong_types_unknown_parameters_and_bad_values():
    errors = errors_of(
        [
            {"name": "a", "kind": "pg_ready", "params": {"host": "db", "port": "5432"}},
            {"name": "b", "kind": "http_check", "params": {"url": "http://x/", "verb": "GET"}},
            {
                "name": "c",
                "kind": "sql_check",
                "params": {"host": "db", "query": "SELECT 1", "expect": "about 3"},
            },
            {"name": "d", "kind": "lb_swap", "params": {"target_group_arn": "arn:x"}},
            {
                "name": "e",
                "kind": "wait",
                "params": {"seconds": 5},
                "on_failure": "ignore",
                "timeout": "soon",
            },
            {"name": "f", "kind": "webhook", "params": {"url": "http://x/"}, "side_effects": False},
        ]
    )
    text = "\n".join(errors)
    assert "step 1 (a): params.port must be a whole number, not '5432'" in text
    assert "step 2 (b): unknown parameter(s) verb for a http_check step" in text
    assert "step 3 (c): params.expect: write the expectation as '> 0'" in text
    assert "step 4 (d): an lb_swap step needs targets to deregister, to register, or both" in text
    assert "step 5 (e): on_failure must be 'stop' or 'continue'" in text
    assert "step 5 (e): timeout: 'soon' is not a duration" in text
    assert "step 6 (f): a webhook step always has side effects" in text


def test_command_steps_need_a_superuser():
    [error] = errors_of(
        [{"name": "restart", "kind": "command", "params": {"args": ["systemctl", "restart", "x"]}}]
    )
    assert error == "step 1 (restart): only superusers may create or edit command steps"
    errors = errors_of(
        [
            {
                "name": "dns",
                "kind": "wait",
                "params": {"seconds": 1},
                "rollback": [{"name": "sneaky", "kind": "command", "params": {"args": ["id"]}}],
            }
        ]
    )
    assert "only superusers may create or edit command steps" in errors[0]
    parse_steps(
        [{"name": "restart", "kind": "command", "params": {"args": ["true"]}}], allow_command=True
    )


def test_a_non_superuser_cannot_save_a_command_step_in_the_portal(manager_client):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    response = manager_client.post(
        reverse("recovery:failover:step_create", args=[runbook.pk]),
        {
            "order": 2,
            "name": "restart",
            "kind": "command",
            "params": '{"args": ["true"]}',
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert response.status_code == 200
    assert "Only superusers may create or edit command steps." in response.content.decode()
    assert not RunbookStep.objects.filter(kind="command").exists()


def test_a_non_superuser_cannot_edit_or_delete_an_existing_command_step(manager_client):
    runbook = RunbookFactory(
        steps=[{"name": "restart", "kind": "command", "params": {"args": ["true"]}}]
    )
    step = runbook.steps.get()
    response = manager_client.post(
        reverse("recovery:failover:step_edit", args=[runbook.pk, step.pk]),
        {
            "order": 1,
            "name": "restart",
            "kind": "command",
            "params": '{"args": ["rm", "-rf", "/"]}',
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert "Only superusers may create or edit command steps." in response.content.decode()
    response = manager_client.post(
        reverse("recovery:failover:step_edit", args=[runbook.pk, step.pk]),
        {
            "order": 1,
            "name": "now harmless",
            "kind": "wait",
            "params": '{"seconds": 1}',
            "on_failure": "stop",
            "retries": 0,
        },
    )
    assert "Only superusers may create or edit command steps." in response.content.decode()
    manager_client.post(reverse("recovery:failover:step_delete", args=[runbook.pk, step.pk]))
    step.refresh_from_db()
    assert step.kind == "command" and step.params == {"args": ["true"], "expect_exit": 0}


def test_a_superuser_can_save_a_command_step(superuser_client):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    response = superuser_client.post(
        reverse("recovery:failover:step_create", args=[runbook.pk]),
        {
            "order": 2,
            "name": "restart",
            "kind": "command",
            "params": '{"args": ["true"]}',
            "on_failure": "stop",
            "retries": 0,
            "timeout": "2m",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    step = RunbookStep.objects.get(kind="command")
    assert step.side_effects and step.timeout.total_seconds() == 120


def test_bad_input_in_the_step_form_is_explained_and_nothing_saved(manager_client):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    before = runbook.config_hash
    url = reverse("recovery:failover:step_create", args=[runbook.pk])
    cases = [
        (
            {"kind": "http_check", "params": '{"url": "ftp://x/"}'},
            "scheme &#x27;ftp&#x27; is not allowed",
        ),
        ({"kind": "http_check", "params": "{}"}, "params.url is required for a http_check step"),
        ({"kind": "http_check", "params": "{not json"}, "This is not valid JSON"),
        ({"kind": "wait", "params": '{"seconds": 1}', "timeout": "later"}, "is not a duration"),
    ]
    for fields, message in cases:
        data = {"order": 2, "name": "bad", "on_failure": "stop", "retries": 0, **fields}
        response = manager_client.post(url, data)
        assert response.status_code == 200
        assert message in response.content.decode(), message
    assert runbook.steps.count() == 1
    runbook.refresh_from_db()
    assert runbook.config_hash == before


def test_admin_refuses_command_steps_from_a_staff_non_superuser(client, db):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="sam", role="manager", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="recovery", codename__endswith="runbookstep"
        )
    )
    staff.user_permissions.add(*Permission.objects.filter(codename="change_runbook"))
    client.force_login(staff)
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    step = runbook.steps.get()
    prefix = "steps"
    data = {
        "system": runbook.system.pk,
        "name": runbook.name,
        "failure_type": runbook.failure_type,
        "description": "",
        f"{prefix}-TOTAL_FORMS": 2,
        f"{prefix}-INITIAL_FORMS": 1,
        f"{prefix}-MIN_NUM_FORMS": 0,
        f"{prefix}-MAX_NUM_FORMS": 1000,
        f"{prefix}-0-id": step.pk,
        f"{prefix}-0-runbook": runbook.pk,
        f"{prefix}-0-order": 1,
        f"{prefix}-0-name": "w",
        f"{prefix}-0-kind": "wait",
        f"{prefix}-0-params": '{"seconds": 1}',
        f"{prefix}-0-test_params": "{}",
        f"{prefix}-0-timeout": "00:01:00",
        f"{prefix}-0-on_failure": "stop",
        f"{prefix}-0-retries": 0,
        f"{prefix}-0-retry_delay": "0",
        f"{prefix}-1-runbook": runbook.pk,
        f"{prefix}-1-order": 2,
        f"{prefix}-1-name": "restart",
        f"{prefix}-1-kind": "command",
        f"{prefix}-1-params": '{"args": ["true"]}',
        f"{prefix}-1-test_params": "{}",
        f"{prefix}-1-timeout": "00:01:00",
        f"{prefix}-1-on_failure": "stop",
        f"{prefix}-1-retries": 0,
        f"{prefix}-1-retry_delay": "0",
    }
    response = client.post(reverse("admin:recovery_runbook_change", args=[runbook.pk]), data)
    assert response.status_code == 200
    assert "Only superusers may create or edit command steps." in response.content.decode()
    assert not RunbookStep.objects.filter(kind="command").exists()


def test_a_command_working_directory_must_be_inside_the_allowed_roots(superuser_client, tmp_path):
    runbook = RunbookFactory(steps=[{"name": "w", "kind": "wait", "params": {"seconds": 1}}])
    url = reverse("recovery:failover:step_create", args=[runbook.pk])
    data = {"order": 2, "name": "restart", "kind": "command", "on_failure": "stop", "retries": 0}
    response = superuser_client.post(url, {**data, "params": '{"args": ["true"], "cwd": "/etc"}'})
    assert response.status_code == 200
    assert "params.cwd: /etc is outside the allowed roots" in response.content.decode()
    assert not RunbookStep.objects.filter(kind="command").exists()
    response = superuser_client.post(
        url, {**data, "params": f'{{"args": ["true"], "cwd": "{tmp_path}"}}'}
    )
    assert response.status_code == 302
