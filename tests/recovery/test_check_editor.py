"""The check editor on the source form: rows of (name, SQL, expectation), the same stored
list and validation as JSON, and 'Try on the latest restore' (issue 18)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import Source
from dr_portal.models import AuditEntry
from dr_portal.runs import RunStatus
from tests.factories import RestoreTestFactory, SourceFactory
from tests.support.forms import form_data

WORKFLOWS = {"name": "workflows", "sql": "SELECT count(*) FROM workflows", "expect": "> 0"}


@pytest.fixture
def source(db):
    return SourceFactory(name="toolhub", checks=[WORKFLOWS])


def _edit(client, source):
    url = reverse("backups:source_edit", args=[source.pk])
    return url, form_data(client.get(url).content.decode(), "checks-0-name")


def test_the_form_shows_one_row_per_check_and_blank_rows(manager_client, source):
    _, data = _edit(manager_client, source)
    assert (data["checks-0-name"], data["checks-0-sql"], data["checks-0-expect"]) == (
        "workflows",
        "SELECT count(*) FROM workflows",
        "> 0",
    )
    assert data["checks-1-name"] == data["checks-2-sql"] == ""  # rows to type new checks into
    assert "checks" not in data  # no JSON box any more


def test_rows_save_the_same_list_json_did_and_blank_rows_are_dropped(manager_client, source):
    url, data = _edit(manager_client, source)
    data.update({"checks-2-name": "users", "checks-2-sql": "SELECT count(*) FROM users;"})
    data["checks-2-expect"] = "not below 90% of previous"
    assert manager_client.post(url, data).status_code == 302
    source.refresh_from_db()
    assert source.checks == [
        WORKFLOWS,
        {
            "name": "users",
            "sql": "SELECT count(*) FROM users",
            "expect": "not below 90% of previous",
        },
    ]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"checks-1-sql": "DELETE FROM workflows", "checks-1-expect": "> 0"}, "read-only"),
        ({"checks-1-sql": "SELECT 1", "checks-1-expect": "lots"}, "is not an expectation"),
        ({"checks-1-name": "workflows", "checks-1-sql": "SELECT 1", "checks-1-expect": "> 0"},
         "duplicate name"),
    ],
)  # fmt: skip
def test_a_bad_row_is_refused_and_nothing_changes(manager_client, source, row, message):
    url, data = _edit(manager_client, source)
    response = manager_client.post(url, {**data, **row})
    assert response.status_code == 400 and message in response.content.decode()
    assert Source.objects.get(pk=source.pk).checks == [WORKFLOWS]


def _try(client, source, data):
    return client.post(reverse("recovery:try_checks", args=[source.pk]), data)


def test_try_reports_what_the_newest_passed_test_observed(manager_client, source):
    stored = {**WORKFLOWS, "observed": "42", "outcome": "passed", "detail": ""}
    RestoreTestFactory(source=source, status=RunStatus.FAILED, finished=timezone.now())
    test = RestoreTestFactory(
        source=source, status=RunStatus.SUCCEEDED, finished=timezone.now(), checks=[stored]
    )
    _, data = _edit(manager_client, source)
    html = _try(manager_client, source, data).content.decode()
    assert f'Restore test <a href="/recovery/tests/{test.pk}/">#{test.pk}</a>' in html
    assert "ran it: passed, observed 42." in html
    assert "no restored copy is kept" in html and "Test now" in html and "disabled" not in html
    entry = AuditEntry.objects.get(action="try verification checks")
    assert entry.object_id == str(source.pk) and "1 already run by test" in entry.detail


def test_try_with_new_sql_says_it_needs_a_restore_test_and_to_save_first(manager_client, source):
    RestoreTestFactory(
        source=source,
        status=RunStatus.SUCCEEDED,
        finished=timezone.now(),
        checks=[{**WORKFLOWS, "observed": "42", "outcome": "passed", "detail": ""}],
    )
    _, data = _edit(manager_client, source)
    data["checks-0-sql"] = "SELECT count(*) FROM workflows WHERE active"
    html = _try(manager_client, source, data).content.decode()
    assert "this version has not run yet" in html
    assert "Save first:" in html and "disabled" in html  # Test now would run the saved checks
    assert Source.objects.get(pk=source.pk).checks == [WORKFLOWS]  # trying saves nothing


def test_try_refuses_an_invalid_check_with_its_message(manager_client, source):
    _, data = _edit(manager_client, source)
    data["checks-0-sql"] = "SELECT 1; DROP TABLE workflows"
    html = _try(manager_client, source, data).content.decode()
    assert "Not valid yet" in html and "Test now" not in html


@pytest.mark.parametrize("client", ["viewer_client", "operator_client"])
def test_only_managers_try_checks(request, source, client):
    assert _try(request.getfixturevalue(client), source, {}).status_code == 403


def test_try_is_post_only(manager_client, source):
    assert manager_client.get(reverse("recovery:try_checks", args=[source.pk])).status_code == 405
