"""The portal's partial restore: choose tables or files in a backup's contents, review what
will be written (the dependency plan), start the same Restore row as `manage.py restore`.
Real PostgreSQL and real files; the queue runs inline."""

import pytest
from django.urls import reverse

from dr_portal.models import AuditEntry
from recovery.contents import contents_for
from recovery.models import BackupContents, Restore
from tests.factories import RestoreTargetFactory
from tests.recovery.pgutil import table_fingerprint, temp_database
from tests.recovery.test_partial_restore import files_backup
from tests.support.data import backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def pg_run(pg_source, work_dir):
    run = backup(pg_source)
    contents_for(run)
    return run


@pytest.fixture
def pg_target(pg_source):
    with temp_database() as db:
        target = RestoreTargetFactory(database=db.dbname)
        target.db = db
        yield target


def url(run):
    return reverse("recovery:partial_restore", args=[run.pk])


def form(choice, **extra):
    data = {
        "backup_run": str(choice["run"].pk),
        "items": choice["items"],
        "failure_type": "data_corruption",
        "restore_target": str(choice["to"].pk) if choice.get("to") else "",
    }
    data.update(extra)
    return data


def test_contents_tree_offers_checkboxes_to_operators_only(pg_run, operator_client, viewer_client):
    fragment = reverse("recovery:run_contents", args=[pg_run.pk])
    page = operator_client.get(fragment).content.decode()
    assert 'name="item" value="public.executions"' in page and "Restore chosen tables" in page
    assert 'name="item"' not in viewer_client.get(fragment).content.decode()
    assert viewer_client.get(url(pg_run) + "?item=public.executions").status_code == 403


def test_operator_reviews_the_plan_then_restores_a_table_beside_the_live_one(
    pg_run, pg_source, pg_target, operator_client, sync_queue
):
    page = operator_client.get(url(pg_run) + "?item=public.executions&item=nope")
    body = page.content.decode()
    assert 'value="public.executions" checked' in body and "Not in this backup" in body
    data = form({"run": pg_run, "items": ["public.executions"], "to": pg_target},
                table_suffix="_restored", review="1")  # fmt: skip
    review = operator_client.post(url(pg_run), data).content.decode()
    # the dependency plan: what comes with the table, and the foreign key left out
    assert "sequence public.executions_id_seq" in review
    assert "constraint executions_pkey on public.executions" in review
    assert "executions_workflow_id_fkey" in review and "skipped" in review
    assert 'id="start-restore"' in review
    assert Restore.objects.count() == 0  # reviewing starts nothing

    response = sync_queue(operator_client.post, url(pg_run), {**data, "confirmed": "1"})
    restore = Restore.objects.get()
    assert response.status_code == 302 and response.url == restore.get_absolute_url()
    restore.refresh_from_db()
    assert restore.status == "succeeded", restore.error
    assert restore.tables == ["public.executions"] and restore.table_suffix == "_restored"
    assert table_fingerprint(pg_target.db, "executions_restored") == table_fingerprint(
        pg_source.db, "executions"
    )
    detail = operator_client.get(restore.get_absolute_url()).content.decode()
    assert "rows in public.executions_restored" in detail and ">500<" in detail
    entry = AuditEntry.objects.get(action="restore")
    assert "tables public.executions, suffix _restored" in entry.detail
    assert f"registered target {pg_target.name}" in entry.detail


def test_bad_choices_are_refused_and_change_nothing(
    pg_run, pg_source, pg_target, operator_client, manager_client
):
    base = {"run": pg_run, "items": ["public.executions"], "to": pg_target}
    cases = [
        (form({**base, "items": ["public.nope"]}, table_suffix="_r"), "is not in this backup"),
        (form(base), "Give a schema or a name suffix"),
        (form(base, table_suffix="_r", table_schema="x"), "Give a schema or a name suffix"),
        (form(base, table_schema="pg_x"), "not a usable schema name"),
        (form(base, table_suffix="bad-name"), "not a usable suffix"),
        (form({**base, "items": []}, table_suffix="_r"), "Choose at least one"),
        # operators: no replacing live tables, no free-form target, not onto the source
        (form(base, replace_tables="on", confirm_tables="public.executions"), "Only managers"),
        (form({**base, "to": None}, target="postgresql://x@127.0.0.1/y", table_suffix="_r"),
         "Only managers may restore to a free-form target"),
        (form({**base, "to": None}, onto_source="on", confirm=pg_source.name,
              table_suffix="_r"), "Only managers may restore onto the source"),
    ]  # fmt: skip
    for data, message in cases:
        response = operator_client.post(url(pg_run), {**data, "confirmed": "1"})
        assert response.status_code == 400, message
        assert message in response.content.decode(), message
    # a manager who mistypes the table names replaces nothing
    data = form({**base, "to": None}, onto_source="on", confirm=pg_source.name,
                replace_tables="on", confirm_tables="public.execution", confirmed="1")  # fmt: skip
    response = manager_client.post(url(pg_run), data)
    assert response.status_code == 400
    assert "type the exact names of the chosen tables" in response.content.decode()
    assert Restore.objects.count() == 0 and not AuditEntry.objects.filter(action="restore")


def test_manager_replaces_a_truncated_live_table_typing_its_name(
    pg_run, pg_source, manager_client, sync_queue
):
    with pg_source.db.connect() as conn:
        conn.execute("TRUNCATE executions")
    data = form({"run": pg_run, "items": ["public.executions"]}, onto_source="on",
                confirm=pg_source.name, replace_tables="on",
                confirm_tables="public.executions")  # fmt: skip
    review = manager_client.post(url(pg_run), data).content.decode()
    assert "renamed aside" in review and 'id="start-restore"' in review
    sync_queue(manager_client.post, url(pg_run), {**data, "confirmed": "1"})
    restore = Restore.objects.get()
    assert restore.status == "succeeded", restore.error
    assert restore.replace_tables and restore.kept_aside.startswith("public.executions_before_")
    assert table_fingerprint(pg_source.db, "executions")[0] == 500
    assert "replacing the live ones" in AuditEntry.objects.get(action="restore").detail


def test_one_file_restored_from_the_portal_without_touching_its_siblings(
    tmp_path, local_destination, work_dir, operator_client, sync_queue
):
    root, run = files_backup(tmp_path, local_destination)
    contents_for(run)
    into = tmp_path / "restore-here"
    (into / "app").mkdir(parents=True)
    (into / "app" / "two.conf").write_text("theirs\n")
    (into / "app" / "one.conf").write_text("broken\n")
    target = RestoreTargetFactory(
        kind="files", host="", port=None, user="", database="", path=str(into)
    )
    page = operator_client.get(reverse("recovery:run_contents", args=[run.pk])).content.decode()
    assert 'name="item" value="app/one.conf"' in page
    data = form({"run": run, "items": ["app/one.conf"], "to": target}, review="1")
    review = operator_client.post(url(run), data).content.decode()
    assert "app/one.conf" in review and 'id="start-restore"' in review
    # replacing an existing file: not for an operator on a target that does not allow it
    refused = operator_client.post(url(run), {**data, "overwrite": "on", "confirmed": "1"})
    assert refused.status_code == 400 and "Only managers may replace" in refused.content.decode()
    assert Restore.objects.count() == 0
    target.allow_replace = True
    target.save()
    sync_queue(operator_client.post, url(run), {**data, "overwrite": "on", "confirmed": "1"})
    restore = Restore.objects.get()
    assert restore.status == "succeeded", restore.error
    assert (into / "app" / "one.conf").read_text() == "one v1\n"
    assert (into / "app" / "two.conf").read_text() == "theirs\n"
    assert "paths app/one.conf, replacing" in AuditEntry.objects.get(action="restore").detail
    for bad in ["../etc/passwd", "/etc/passwd"]:
        response = operator_client.post(url(run), form({"run": run, "items": [bad], "to": target}))
        assert response.status_code == 400 and "is not in this backup" in response.content.decode()


def test_partial_restore_page_without_contents_sends_back_to_the_run(
    pg_source, work_dir, operator_client
):
    run = backup(pg_source)
    response = operator_client.get(url(run))
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert operator_client.put(url(run)).status_code == 405


def test_contents_listed_before_plans_were_kept_still_restore(pg_run, pg_target, operator_client):
    contents = BackupContents.objects.get(run=pg_run)
    contents.detail = {k: v for k, v in contents.detail.items() if k != "toc"}
    contents.save()
    data = form({"run": pg_run, "items": ["public.executions"], "to": pg_target},
                table_suffix="_restored", review="1")  # fmt: skip
    review = operator_client.post(url(pg_run), data).content.decode()
    assert "before dependency plans were kept" in review and 'id="start-restore"' in review
