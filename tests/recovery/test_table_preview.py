"""Preview of a table as it is in a backup: managers only, masked columns never sent to
the browser, audited (the table, not the data), the scratch copy dropped afterwards."""

import pytest
from django.urls import reverse

from dr_portal.models import AuditEntry
from recovery.contents import contents_for
from recovery.engine.preview import masker
from recovery.workspace import scratch_server
from tests.support.data import backup
from tests.support.forms import form_data

pytestmark = pytest.mark.django_db

SECRET_MAIL = "ceo-private@example.com"
SECRET_NOTE = "launch-codes-4711"


@pytest.fixture
def users_run(pg_source, work_dir):
    with pg_source.db.connect() as conn:
        conn.execute(
            "CREATE TABLE users (id serial PRIMARY KEY, name text, email text, api_token text, "
            "note text, bio text)"
        )
        conn.execute(
            "INSERT INTO users (name, email, api_token, note, bio) SELECT 'user-' || g, "
            "%s, 'tok-' || g, %s, repeat('x', 500) FROM generate_series(1, 30) g",
            (SECRET_MAIL, SECRET_NOTE),
        )
    pg_source.masked_columns = [*pg_source.masked_columns, "users.note"]
    pg_source.save()
    run = backup(pg_source)
    contents_for(run)
    return run


def scratch_databases(prefix: str) -> list[str]:
    with scratch_server().connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def test_manager_previews_first_rows_with_masked_columns_absent_from_the_bytes(
    users_run, manager_client, scratch_prefix
):
    url = reverse("recovery:preview_table", args=[users_run.pk])
    fragment = reverse("recovery:run_contents", args=[users_run.pk])
    assert 'name="table" value="public.users"' in manager_client.get(fragment).content.decode()
    response = manager_client.post(url, {"table": "public.users"})
    assert response.status_code == 200
    body = response.content
    assert b"user-1<" in body and b"tok-" not in body
    # email and api_token by default, note by the source's own pattern: never in the bytes
    assert SECRET_MAIL.encode() not in body and SECRET_NOTE.encode() not in body
    assert body.count("•••".encode()) >= 20 * 3
    assert b"x" * 80 + "…".encode() in body and b"x" * 81 not in body  # width capped
    assert b"The first 20 of 30 rows" in body
    entry = AuditEntry.objects.get(action="preview table")
    assert entry.detail.startswith("public.users of backup run")
    assert "masked: email, api_token, note" in entry.detail
    assert SECRET_MAIL not in entry.detail and "user-1" not in entry.detail
    assert scratch_databases(scratch_prefix) == []  # the scratch copy is gone


def test_preview_is_for_managers_and_posts_only(users_run, operator_client, viewer_client):
    url = reverse("recovery:preview_table", args=[users_run.pk])
    fragment = reverse("recovery:run_contents", args=[users_run.pk])
    assert "Preview</button>" not in operator_client.get(fragment).content.decode()
    assert operator_client.post(url, {"table": "public.users"}).status_code == 403
    assert viewer_client.post(url, {"table": "public.users"}).status_code == 403
    assert not AuditEntry.objects.filter(action="preview table").exists()


def test_preview_of_a_table_not_in_the_backup_is_refused(users_run, manager_client):
    url = reverse("recovery:preview_table", args=[users_run.pk])
    assert manager_client.get(url).status_code == 405
    response = manager_client.post(url, {"table": "pg_catalog.pg_authid"})
    assert response.status_code == 302
    assert not AuditEntry.objects.filter(action="preview table").exists()


def test_mask_patterns_match_column_table_and_schema_forms():
    is_masked = masker(["*email*", "users.note", "audit.*.ip", "SSN"])
    assert is_masked("public", "users", "Work_Email")
    assert is_masked("public", "users", "note") and not is_masked("public", "posts", "note")
    assert is_masked("audit", "logins", "ip") and not is_masked("public", "logins", "ip")
    assert is_masked("public", "people", "ssn")
    assert not masker([])("public", "users", "password")


def test_masked_columns_are_edited_in_the_source_form(manager_client, pg_source):
    edit = reverse("backups:source_edit", args=[pg_source.pk])
    data = form_data(manager_client.get(edit).content.decode(), "masked_columns")
    assert "*email*" in data["masked_columns"]  # the defaults are shown, to keep or change
    data["masked_columns"] = "users.note\n*email*"
    assert manager_client.post(edit, data).status_code == 302
    pg_source.refresh_from_db()
    assert pg_source.masked_columns == ["users.note", "*email*"]
    data["masked_columns"] = "users.note'--"
    response = manager_client.post(edit, data)
    assert response.status_code == 400 and "is not a column pattern" in response.content.decode()
    pg_source.refresh_from_db()
    assert pg_source.masked_columns == ["users.note", "*email*"]
