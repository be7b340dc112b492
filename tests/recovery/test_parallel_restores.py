"""A parallel dump (job parallel: 2) through the portal: restore test, restore into a
registered target, partial restore and contents, all from the directory-format artifact."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from recovery.models import Restore
from tests.factories import RestoreTargetFactory
from tests.recovery.conftest import run_test
from tests.recovery.pgutil import table_fingerprint, temp_database
from tests.support.data import backup

pytestmark = pytest.mark.django_db


@pytest.fixture
def parallel_source(pg_source):
    with pg_source.db.connect() as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 300) g")
    pg_source.job.parallel = 2
    pg_source.job.save()
    return pg_source


def restore(*args) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("restore", *map(str, args), "--yes", "--json", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def test_parallel_backup_passes_its_restore_test_with_the_same_rows(parallel_source, work_dir):
    run = backup(parallel_source)
    assert run.manifest["dump_format"] == "directory" and run.manifest["parallel"] == 2
    assert "pg_dump -Fd -j 2" in run.log
    assert not (settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}").exists()
    test = run_test(parallel_source)
    assert test.status == "succeeded", test.error
    assert test.backup_run_id == run.pk
    observed = {c["name"]: c["observed"] for c in test.checks}
    assert observed["workflows"] == "50" and observed["executions"] == "500"
    assert test.integrity == "pg_restore completed without errors"
    assert "a parallel dump: pg_restore -j 2 on its directory" in test.log
    assert list(work_dir.iterdir()) == []  # the dump directory went with the work directory


@pytest.mark.slow
def test_parallel_backup_restores_into_a_registered_target(parallel_source, work_dir):
    run = backup(parallel_source)
    source_db = parallel_source.db
    with temp_database() as target_db:
        target = RestoreTargetFactory(database=target_db.dbname, sources=[parallel_source])
        code, result = restore(run.pk, "--target", target.name)
        assert code == 0, result
        for table in ("workflows", "executions", "notes"):
            assert table_fingerprint(target_db, table) == table_fingerprint(source_db, table)
    assert Restore.objects.get().status == "succeeded"
    assert list(work_dir.iterdir()) == []


@pytest.mark.slow
def test_chosen_tables_of_a_parallel_backup_restore_beside_the_live_ones(parallel_source, work_dir):
    run = backup(parallel_source)
    with temp_database() as target_db:
        target = RestoreTargetFactory(database=target_db.dbname)
        code, result = restore(
            run.pk, "--target", target.name, "--tables", "notes", "--schema", "recovered"
        )
        assert code == 0, result
        assert table_fingerprint(target_db, "recovered.notes") == table_fingerprint(
            parallel_source.db, "notes"
        )
    checks = {c["name"]: c for c in Restore.objects.get().checks}
    assert checks["rows in recovered.notes"]["observed"] == "300"


def test_contents_of_a_parallel_backup_list_tables_and_rows(parallel_source, work_dir):
    run = backup(parallel_source)
    out = StringIO()
    call_command("backup_contents", str(run.pk), "--json", stdout=out)
    result = json.loads(out.getvalue())
    rows = {i["name"]: i.get("rows") for i in result["items"] if i["type"] == "table"}
    assert rows == {"workflows": 50, "executions": 500, "notes": 300}
    assert result["dump_format"] == "directory"
    assert list(work_dir.iterdir()) == []


def test_a_parallel_dump_failing_mid_dump_leaves_no_good_run_and_no_staging(parallel_source):
    """pg_dump fails in a worker's COPY (row security on a table the dump role may lock but
    not read), after staging already holds the schema and other tables' data."""
    from backups.models import BackupCopy, BackupRun
    from backups.services import backup_now

    role = f"dr_dumper_{parallel_source.db.dbname[-10:]}"
    with parallel_source.db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        conn.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
    try:
        parallel_source.user = role
        parallel_source.save()
        run = backup_now(parallel_source.job)
    finally:
        with parallel_source.db.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    assert run.status == "failed"
    assert "row-level security" in run.error and "pg_dump exited" in run.error
    assert not BackupRun.objects.good().exists() and not BackupCopy.objects.exists()
    assert not (settings.VAR_DIR / "scratch" / f"backup-run-{run.pk}").exists()
    store = parallel_source.job.destinations.get().path
    assert not [p for p in Path(store).rglob("*") if p.is_file()]
