"""verify_backup, restore and dr_status: same code paths as the portal, exit codes as promised."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from recovery.engine.pg import drop_database
from tests.factories import BackupJobFactory, SourceFactory
from tests.recovery.conftest import run_test
from tests.recovery.pgutil import SERVER, scratch_databases, table_fingerprint
from tests.support.data import backup

pytestmark = pytest.mark.django_db


def call(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command(*args, stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue()


def test_verify_backup_json_passes(pg_source, work_dir):
    run = backup(pg_source)
    code, out = call("verify_backup", str(run.pk), "--json")
    result = json.loads(out)
    assert code == 0, result
    assert result["status"] == "passed"
    assert {c["name"] for c in result["checks"]} == {"workflows", "executions", "executions canary"}
    assert all(c["passed"] for c in result["checks"])
    assert result["rto_s"] > 0 and result["rpo_s"] >= 0 and result["error"] == ""


def test_verify_backup_latest_of_job_fails_with_exit_1(pg_source, work_dir):
    backup(pg_source)
    pg_source.checks = [{"name": "none", "sql": "SELECT 0", "expect": "> 0"}]
    pg_source.save()
    code, out = call("verify_backup", "--latest", pg_source.job.name, "--json")
    result = json.loads(out)
    assert code == 1
    assert result["status"] == "failed" and result["checks"][0]["observed"] == "0"


@pytest.mark.slow
def test_restore_to_new_database_then_onto_it_again_keeps_previous_aside(pg_source, work_dir):
    import uuid

    run = backup(pg_source)
    name = f"dr_restored_{uuid.uuid4().hex[:8]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    aside = None
    try:
        code, out = call("restore", str(run.pk), "--to", url, "--free-form", "--yes", "--json")
        result = json.loads(out)
        assert code == 0, result
        assert result["kept_aside"] is None and result["rto_s"] > 0
        copy = SERVER.with_db(name)
        for table in ("workflows", "executions"):
            assert table_fingerprint(copy, table) == table_fingerprint(pg_source.db, table)
        with copy.connect() as conn:
            conn.execute("DELETE FROM executions")  # "corruption" to be repaired
        code, out = call("restore", str(run.pk), "--to", url, "--free-form", "--yes", "--json")
        result = json.loads(out)
        assert code == 0, result
        aside = result["kept_aside"].rsplit("/", 1)[1]
        assert aside.startswith(f"{name}_before_restore_")
        assert table_fingerprint(copy, "executions") == table_fingerprint(
            pg_source.db, "executions"
        )
        assert table_fingerprint(SERVER.with_db(aside), "executions")[0] == 0
    finally:
        drop_database(SERVER, name)
        if aside:
            drop_database(SERVER, aside)
    assert scratch_databases() == []


def test_restore_needs_yes(pg_source, work_dir):
    from django.core.management.base import CommandError

    run = backup(pg_source)
    with pytest.raises(CommandError, match="--yes"):
        call_command(
            "restore", str(run.pk), "--to", "postgresql://postgres@127.0.0.1/x", "--free-form"
        )


def test_restore_sqlite_onto_source_keeps_current_file_aside(sqlite_source, work_dir):
    import sqlite3

    run = backup(sqlite_source)
    conn = sqlite3.connect(sqlite_source.path)
    conn.execute("DELETE FROM workflows")
    conn.commit()
    conn.close()
    code, out = call(
        "restore", str(run.pk), "--to", sqlite_source.path, "--free-form", "--yes", "--json"
    )
    result = json.loads(out)
    assert code == 0, result
    conn = sqlite3.connect(sqlite_source.path)
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 20
    conn.close()
    aside = sqlite3.connect(result["kept_aside"])
    assert aside.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 0
    aside.close()
    from recovery.models import Restore

    assert Restore.objects.get().onto_source


def test_restore_outside_allowed_roots_is_refused(sqlite_source, work_dir):
    run = backup(sqlite_source)
    code, out = call(
        "restore", str(run.pk), "--to", "/etc/dr-portal-test.db", "--free-form", "--yes", "--json"
    )
    result = json.loads(out)
    assert code == 1
    assert "outside the allowed roots" in result["error"]
    from recovery.models import Restore

    assert not Restore.objects.exists()


@pytest.mark.slow
def test_dr_status_exit_codes(pg_source, work_dir):
    from backups.models import Source

    Source.objects.exclude(pk=pg_source.pk).delete()  # the portal's own database source
    # No backup at all: breached.
    code, out = call("dr_status")
    assert code == 2 and "BREACHED" in out and "no good backup" in out
    # A fresh backup but never restore-tested: at risk (needs verification).
    backup(pg_source)
    code, out = call("dr_status", "--json")
    result = json.loads(out)
    assert code == 1 and result["verdict"] == "at_risk", result
    assert result["sources"][0]["needs_verification"]
    # Tested and passed: ok.
    assert run_test(pg_source).passed
    code, out = call("dr_status")
    assert code == 0, out
    assert out.strip().endswith("DR OK: 1 sources")
    # Newest restore test failed: breached.
    pg_source.checks = [{"name": "none", "sql": "SELECT 0", "expect": "> 0"}]
    pg_source.save()
    assert not run_test(pg_source).passed
    code, out = call("dr_status")
    assert code == 2 and "failed" in out


def test_restore_without_overwrite_never_touches_an_existing_target(
    sqlite_source, work_dir, tmp_path
):
    from recovery import restores

    run = backup(sqlite_source)
    existing = tmp_path / "other.db"
    existing.write_bytes(b"precious")
    restore = restores.start_restore(sqlite_source, target=str(existing), backup_run=run)
    restore = restores.execute_restore(restore)
    assert restore.status == "failed"
    assert "already exists and overwriting it was not confirmed" in restore.error
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("other", ".other"))) == [
        "other.db"
    ]


def test_restore_files_to_new_directory(db, tmp_path, local_destination, work_dir):
    from recovery import restores

    conf = tmp_path / "config"
    conf.mkdir()
    (conf / "app.env").write_text("A=1\n")
    source = SourceFactory(system__name="sys", name="conf", kind="files", path=str(conf))
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    run = backup(source)
    target = tmp_path / "restored-config"
    restore = restores.execute_restore(
        restores.start_restore(source, target=str(target), backup_run=run)
    )
    assert restore.status == "succeeded", restore.error
    assert (target / "app.env").read_text() == "A=1\n"
    assert restore.rto is not None and restore.kept_aside == ""


def test_source_url_as_new_target_is_refused(pg_source):
    from recovery import restores

    url = f"postgresql://postgres@127.0.0.1:5432/{pg_source.db.dbname}"
    with pytest.raises(ValueError, match="source itself"):
        restores.start_restore(pg_source, target=url)


@pytest.mark.slow
def test_restore_onto_postgres_source_keeps_it_aside(pg_source, work_dir):
    from recovery.models import Restore

    run = backup(pg_source)
    before = table_fingerprint(pg_source.db, "executions")
    with pg_source.db.connect() as conn:
        conn.execute("DELETE FROM executions WHERE id % 2 = 0")  # the corruption
    url = f"postgresql://postgres@127.0.0.1:5432/{pg_source.db.dbname}"
    code, out = call(
        "restore",
        str(run.pk),
        "--to",
        url,
        "--free-form",
        "--yes",
        "--json",
        "--failure-type",
        "data_corruption",
    )
    result = json.loads(out)
    aside = (result["kept_aside"] or "").rsplit("/", 1)[-1]
    try:
        assert code == 0, result
        assert Restore.objects.get().onto_source
        assert table_fingerprint(pg_source.db, "executions") == before
        assert table_fingerprint(SERVER.with_db(aside), "executions")[0] == 250
        assert Restore.objects.get().rto_target.total_seconds() == 1800
    finally:
        if aside:
            drop_database(SERVER, aside)


def test_portal_database_is_never_restored_onto_itself(db):
    from backups.models import Source
    from recovery import restores

    portal = Source.objects.get(is_portal_db=True)
    with pytest.raises(ValueError, match="cannot be restored onto itself"):
        restores.start_restore(portal, onto_source=True)
