"""Every form and dr_apply refuse oversized names, impossible ports and hosts that are not
host names, with a message, and change nothing (issue 18)."""

import io
import json

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.urls import reverse

from backups.models import Source
from dr_portal.lib.hostnames import host_problem
from recovery.models import RunbookStep
from tests.factories import (
    ContactFactory,
    DestinationFactory,
    DrillPlanFactory,
    IncidentFactory,
    RestoreTargetFactory,
    RunbookFactory,
    SourceFactory,
)
from tests.support.forms import form_data

LONG_NAME = "x" * 5000
BAD_HOST = "no such host!!"
LONG_TEXT = "y" * 10_001
PG_READY = {"name": "db up", "kind": "pg_ready", "params": {"host": "db.internal"}}


def _source():
    return SourceFactory(postgresql=True, host="db.internal", database="app")


# (what to create, its edit URL, the field, the bad value, part of the message)
CASES = [
    (_source, "backups:source_edit", "name", LONG_NAME, "at most 100 characters"),
    (_source, "backups:source_edit", "port", "99999", "is not a TCP port"),
    (_source, "backups:source_edit", "host", BAD_HOST, "is not a host name"),
    (_source, "backups:source_edit", "pitr_pg_host", BAD_HOST, "is not a host name"),
    (DestinationFactory, "backups:destination_edit", "name", LONG_NAME, "at most 100"),
    (DestinationFactory, "backups:destination_edit", "path", "/" + LONG_NAME, "at most 1024"),
    (RestoreTargetFactory, "recovery:restore_target_edit", "host", BAD_HOST, "not a host name"),
    (RestoreTargetFactory, "recovery:restore_target_edit", "port", "99999", "less than or equal"),
    (RestoreTargetFactory, "recovery:restore_target_edit", "name", LONG_NAME, "at most 100"),
    (ContactFactory, "incidents:contact_edit", "name", LONG_NAME, "at most 120"),
    (ContactFactory, "incidents:contact_edit", "phone", "call me!!", "is not a phone number"),
    (ContactFactory, "incidents:contact_edit", "notes", LONG_TEXT, "at most 10000"),
    (IncidentFactory, "incidents:edit", "title", LONG_NAME, "at most 200"),
    (IncidentFactory, "incidents:edit", "root_cause", LONG_TEXT, "at most 10000"),
    (DrillPlanFactory, "drills:plan_edit", "description", LONG_TEXT, "at most 10000"),
    (DrillPlanFactory, "drills:plan_edit", "name", LONG_NAME, "at most 120"),
]


def _edit_url(obj, url_name):
    return reverse(url_name, args=[obj.identifier if url_name == "incidents:edit" else obj.pk])


@pytest.mark.parametrize(
    "make, url_name, field, value, message", CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES]
)
def test_form_refuses_and_changes_nothing(manager_client, make, url_name, field, value, message):
    obj = make()
    url = _edit_url(obj, url_name)
    data = form_data(manager_client.get(url).content.decode(), field)
    before = model_to_dict(type(obj).objects.get(pk=obj.pk))
    response = manager_client.post(url, {**data, field: value})
    assert response.status_code in (200, 400)
    assert message in response.content.decode().replace("&quot;", '"')
    assert model_to_dict(type(obj).objects.get(pk=obj.pk)) == before
    # The same form with its own values saves: it was the bad value that was refused.
    assert manager_client.post(url, data).status_code == 302


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "x" * 121, "at most 120 characters"),
        ("params", json.dumps({"host": BAD_HOST}), "is not a host name"),
        ("params", json.dumps({"host": "db", "port": 99999}), "between 1 and 65535"),
    ],
)
def test_runbook_step_form_refuses_and_changes_nothing(manager_client, field, value, message):
    runbook = RunbookFactory(steps=[PG_READY])
    step = runbook.steps.get()
    url = reverse("recovery:failover:step_edit", args=[runbook.pk, step.pk])
    data = form_data(manager_client.get(url).content.decode(), "params")
    before = model_to_dict(step)
    response = manager_client.post(url, {**data, field: value})
    assert response.status_code == 200
    html = response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert message in html
    step.refresh_from_db()
    assert model_to_dict(step) == before
    assert manager_client.post(url, data).status_code == 302


def _dr_apply(tmp_path, text, command="dr_apply"):
    path = tmp_path / "dr.yaml"
    path.write_text(text)
    err = io.StringIO()
    try:
        call_command(command, str(path), stdout=io.StringIO(), stderr=err)
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return 0, err.getvalue()


def test_dr_apply_refuses_a_host_that_is_not_a_host_name(db, tmp_path):
    code, err = _dr_apply(
        tmp_path,
        f"""
systems: [{{name: tool-hub}}]
sources:
  - {{name: pg, system: tool-hub, kind: postgresql, host: "{BAD_HOST}", database: d, user: u}}
""",
    )
    assert code == 1 and f'sources[0].host: "{BAD_HOST}" is not a host name' in err
    assert not Source.objects.filter(name="pg").exists()


def test_apply_runbooks_refuses_a_step_host_that_is_not_a_host_name(db, tmp_path):
    RunbookFactory(name="kept", steps=[PG_READY])
    code, err = _dr_apply(
        tmp_path,
        f"""
runbooks:
  - system: tool-hub
    name: kept
    failure_type: single_node
    steps: [{{name: db up, kind: pg_ready, params: {{host: "{BAD_HOST}"}}}}]
""",
        command="apply_runbooks",
    )
    assert code == 1 and "is not a host name" in err, err
    assert RunbookStep.objects.get().params["host"] == "db.internal"


@pytest.mark.parametrize(
    "value",
    ["db.internal", "db-1", "pg_primary", "10.0.0.5", "::1", "[::1]", "db.example.com.", "/run/pg"],
)
def test_host_names_and_addresses_pass(value):
    assert host_problem(value, socket_dir=True) is None


@pytest.mark.parametrize(
    "value", [BAD_HOST, "-db", "db-", "a..b", "a" * 64 + ".com", "db:5432", "http://db", "d b"]
)
def test_other_shapes_are_refused(value):
    assert host_problem(value, socket_dir=True)
    assert host_problem("/run/pg") is not None  # a socket directory only where libpq takes one
