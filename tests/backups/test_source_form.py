"""Kind-specific source and destination forms, and "Test connection" on the source form:
the values as typed are tried (real PostgreSQL, a real SQLite file), nothing is saved, a
stored password never goes to a changed endpoint."""

import pytest
from django.urls import reverse

from backups import health
from backups.forms import DestinationForm, SourceForm
from backups.models import Source
from dr_portal.models import AuditEntry
from tests.factories import SourceFactory, SystemFactory
from tests.marks import needs
from tests.recovery.test_engine import closed_port
from tests.support import data

pytestmark = pytest.mark.django_db
NEW = reverse("backups:source_test_new")


@pytest.fixture
@needs("postgres")
def pg_server():
    return {"host": "127.0.0.1", "port": 5432, "database": "postgres", "user": "postgres"}


def _form(system, **fields):
    return {
        "system": system.pk,
        "name": "toolhub-db",
        "data_class": "critical",
        "restore_test_schedule": "0 3 * * 0",
        "exclude": "",
        "checks": "[]",
        **fields,
    }


def test_each_field_belongs_to_its_kinds():
    rows = {field.name: kinds for field, kinds in SourceForm().rows()}
    assert rows["host"] == "postgresql" and rows["new_password"] == "postgresql"
    assert rows["path"] == "sqlite files" and rows["exclude"] == "files"
    assert rows["name"] == "" and rows["checks"] == ""  # every kind
    dest = {field.name: kinds for field, kinds in DestinationForm().rows()}
    assert dest["path"] == "local" and dest["bucket"] == "s3" and dest["keep_days"] == ""


def test_form_pages_mark_fields_and_offer_the_test(manager_client):
    page = manager_client.get(reverse("backups:source_create")).content.decode()
    assert "data-kind-form" in page and 'data-kinds="postgresql"' in page
    assert "Test connection" in page and f'hx-post="{NEW}"' in page
    page = manager_client.get(reverse("backups:destination_create")).content.decode()
    assert 'data-kinds="s3"' in page and "Test connection" not in page


def test_connection_to_a_real_postgresql_passes_and_saves_nothing(pg_server, manager_client):
    system = SystemFactory(name="Tool Hub")
    before = Source.objects.count()
    response = manager_client.post(NEW, _form(system, kind="postgresql", **pg_server))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Connection test passed" in html and "PostgreSQL 15" in html and "a primary" in html
    assert Source.objects.count() == before
    assert AuditEntry.objects.filter(action="test source connection").exists()


def test_connection_to_a_closed_port_fails_naming_it(pg_server, manager_client):
    system = SystemFactory(name="Tool Hub")
    port = closed_port()
    fields = {**pg_server, "port": port}
    html = manager_client.post(NEW, _form(system, kind="postgresql", **fields)).content.decode()
    assert "Connection test failed" in html and f"127.0.0.1:{port}/postgres" in html


def test_sqlite_file_is_opened_read_only_and_a_missing_one_named(tmp_path, manager_client):
    system = SystemFactory(name="Tool Hub")
    db = data.small_sqlite(tmp_path / "tool_hub.db")
    html = manager_client.post(NEW, _form(system, kind="sqlite", path=str(db))).content.decode()
    assert "Connection test passed" in html and "1 tables" in html
    missing = tmp_path / "nope.db"
    html = manager_client.post(
        NEW, _form(system, kind="sqlite", path=str(missing))
    ).content.decode()
    assert "Connection test failed" in html and "no file at" in html


def test_invalid_form_says_what_to_fix_first(manager_client):
    system = SystemFactory(name="Tool Hub")
    html = manager_client.post(NEW, _form(system, kind="postgresql", port=99999)).content.decode()
    assert "fix the form first" in html and "Port" in html


def test_stored_password_never_goes_to_a_changed_host(manager_client, monkeypatch):
    source = SourceFactory(
        postgresql=True, host="db1.internal", database="app", user="app", password="s3cret"
    )
    seen = []
    monkeypatch.setattr(health, "probe_source", lambda spec: seen.append(spec.password) or "ok")
    url = reverse("backups:source_test", args=[source.pk])
    common = _form(source.system, name=source.name, kind="postgresql", database="app", user="app")
    manager_client.post(url, {**common, "host": "db1.internal", "port": 5432})
    manager_client.post(url, {**common, "host": "attacker.example", "port": 5432})
    assert seen == ["s3cret", ""]
    source.refresh_from_db()
    assert source.host == "db1.internal"  # nothing saved


@pytest.mark.parametrize("client", ["viewer_client", "operator_client"])
def test_only_managers_test_connections(request, client):
    assert request.getfixturevalue(client).post(NEW, {}).status_code == 403


def test_get_is_refused(manager_client):
    assert manager_client.get(NEW).status_code == 405
