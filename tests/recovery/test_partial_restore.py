"""Partial restores on real PostgreSQL and real files: chosen tables beside the live ones,
chosen paths without touching their siblings."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recovery.models import Restore
from tests.factories import BackupJobFactory, RestoreTargetFactory, SourceFactory
from tests.recovery.pgutil import table_fingerprint, temp_database
from tests.support.data import backup

pytestmark = pytest.mark.django_db


def restore(*args) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("restore", *map(str, args), "--yes", "--json", stdout=out)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, json.loads(out.getvalue())


def source_url(source) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{source.db.dbname}"


def relations(db, schema="public") -> set[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'S', 'i')",
            (schema,),
        ).fetchall()
    return {r[0] for r in rows}


def test_truncated_table_comes_back_beside_the_live_one_then_is_swapped(pg_source, work_dir):
    run = backup(pg_source)
    before = table_fingerprint(pg_source.db, "executions")
    with pg_source.db.connect() as conn:
        conn.execute("TRUNCATE executions")  # the accident at 3 a.m.
        conn.execute("INSERT INTO workflows (name) VALUES ('after the backup')")
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "executions",
        "--suffix", "_restored",
    )  # fmt: skip
    assert code == 0, result
    restored = Restore.objects.get()
    assert restored.onto_source and restored.rto is not None
    assert [c["name"] for c in restored.checks] == ["rows in public.executions_restored"]
    assert restored.checks[0]["outcome"] == "passed" and restored.checks[0]["observed"] == "500"
    # the foreign key to workflows (not restored) is reported, not silently dropped
    assert any("executions_workflow_id_fkey" in w for w in result["warnings"])
    names = relations(pg_source.db)
    assert {"executions_restored", "executions_id_seq_restored", "executions_pkey_restored"} <= (
        names
    )
    # the live tables were not touched
    assert table_fingerprint(pg_source.db, "executions")[0] == 0
    assert table_fingerprint(pg_source.db, "workflows")[0] == 51
    assert table_fingerprint(pg_source.db, "executions_restored") == before

    # the operator swaps it in; the restored sequence continues after the dumped rows
    with pg_source.db.connect() as conn, conn.transaction():
        conn.execute("ALTER TABLE executions RENAME TO executions_truncated")
        conn.execute("ALTER TABLE executions_restored RENAME TO executions")
        new_id = conn.execute(
            "INSERT INTO executions (workflow_id, status) VALUES (1, 'ok') RETURNING id"
        ).fetchone()[0]
    assert new_id == 501
    assert table_fingerprint(pg_source.db, "executions")[0] == 501


def test_tables_into_a_schema_of_a_registered_target_keep_sequences_indexes_and_keys(
    pg_source, work_dir
):
    with pg_source.db.connect() as conn:
        conn.execute("CREATE INDEX executions_status ON executions (status)")
        conn.execute("CREATE TABLE unrelated (id int)")
    run = backup(pg_source)
    with temp_database() as target_db:
        target = RestoreTargetFactory(database=target_db.dbname)
        code, result = restore(
            run.pk, "--target", target.name, "--tables", "public.workflows,executions",
            "--schema", "recovered",
        )  # fmt: skip
        assert code == 0, result
        assert result["warnings"] == [] or not any("foreign key" in w for w in result["warnings"])
        names = relations(target_db, "recovered")
        assert {"workflows", "executions", "workflows_id_seq", "executions_id_seq"} <= names
        assert {"executions_status", "workflows_pkey"} <= names and "unrelated" not in names
        with target_db.connect() as conn:
            fks = conn.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND connamespace = 'recovered'::regnamespace"
            ).fetchall()
            next_id = conn.execute("SELECT nextval('recovered.workflows_id_seq')").fetchone()[0]
        assert fks == [("executions_workflow_id_fkey",)] and next_id == 51
        checks = {c["name"]: c for c in Restore.objects.get().checks}
        assert checks["rows in recovered.workflows"]["observed"] == "50"
        assert all(c["outcome"] == "passed" for c in checks.values())


def test_a_taken_name_refuses_and_changes_nothing(pg_source, work_dir):
    run = backup(pg_source)
    with pg_source.db.connect() as conn:
        conn.execute("CREATE TABLE workflows_old (keep text)")
        conn.execute("INSERT INTO workflows_old VALUES ('mine')")
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "workflows",
        "--suffix", "_old",
    )  # fmt: skip
    assert code == 1 and "public.workflows_old already exist" in result["error"]
    assert table_fingerprint(pg_source.db, "workflows_old")[0] == 1
    assert "workflows_id_seq_old" not in relations(pg_source.db)


def test_bad_choices_are_refused_clearly(pg_source, work_dir):
    run = backup(pg_source)
    url = source_url(pg_source)
    code, result = restore(run.pk, "--to", url, "--free-form", "--tables", "executions")
    assert code == 1 and "give a schema (--schema) or a name suffix" in result["error"]
    assert Restore.objects.count() == 0
    code, result = restore(run.pk, "--to", url, "--free-form", "--tables", "nope", "--suffix", "_x")
    assert code == 1 and "the backup holds no table 'nope'" in result["error"]
    code, result = restore(
        run.pk, "--to", url, "--free-form", "--tables", "x", "--schema", "pg_catalog"
    )
    assert code == 1 and "not a usable schema name" in result["error"]


def files_backup(tmp_path, local_destination):
    root = tmp_path / "conf"
    (root / "app").mkdir(parents=True)
    (root / "app" / "one.conf").write_text("one v1\n")
    (root / "app" / "two.conf").write_text("two v1\n")
    (root / "keys").mkdir()
    (root / "keys" / "tls.pem").write_text("PEM\n")
    source = SourceFactory(system__name="sys", name="conf", kind="files", path=str(root))
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    return root, backup(source)


def test_one_file_restored_without_touching_its_siblings(tmp_path, local_destination, work_dir):
    root, run = files_backup(tmp_path, local_destination)
    (root / "app" / "one.conf").write_text("one broken\n")
    (root / "app" / "two.conf").write_text("two v2 (changed since, must stay)\n")
    (root / "app" / "three.conf").write_text("new since\n")
    code, result = restore(run.pk, "--to", str(root), "--free-form", "--paths", "app/one.conf")
    assert code == 1 and "already exists and replacing it was not confirmed" in result["error"]
    assert (root / "app" / "one.conf").read_text() == "one broken\n"

    code, result = restore(
        run.pk, "--to", str(root), "--free-form", "--paths", "app/one.conf", "--replace"
    )
    assert code == 0, result
    assert (root / "app" / "one.conf").read_text() == "one v1\n"
    assert (root / "app" / "two.conf").read_text() == "two v2 (changed since, must stay)\n"
    assert (root / "app" / "three.conf").read_text() == "new since\n"
    aside = [p.name for p in (root / "app").iterdir() if ".before_restore_" in p.name]
    assert len(aside) == 1 and (root / "app" / aside[0]).read_text() == "one broken\n"
    assert Restore.objects.filter(status="succeeded").get().checks[0]["outcome"] == "passed"
    assert not [p for p in root.iterdir() if p.name.startswith(".dr-restore-")]


def test_a_directory_restored_into_a_registered_target(tmp_path, local_destination, work_dir):
    _, run = files_backup(tmp_path, local_destination)
    into = tmp_path / "restore-here"
    (into / "keys").mkdir(parents=True)
    (into / "other").write_text("someone else's\n")
    target = RestoreTargetFactory(
        kind="files", host="", port=None, user="", database="", path=str(into)
    )
    code, result = restore(run.pk, "--target", target.name, "--paths", "app")
    assert code == 0, result
    assert sorted(p.name for p in (into / "app").iterdir()) == ["one.conf", "two.conf"]
    assert (into / "other").read_text() == "someone else's\n" and list(
        (into / "keys").iterdir()
    ) == []
    code, result = restore(run.pk, "--target", target.name, "--paths", "../etc/passwd")
    assert code == 1 and "not a path inside the backup" in result["error"]
    with pytest.raises(CommandError):
        call_command("restore", str(run.pk), "--paths", "app", "--yes")


def test_identity_column_and_a_view_reported_and_all_or_nothing(pg_source, work_dir):
    with pg_source.db.connect() as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        conn.execute(
            "CREATE TABLE events (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " at timestamptz DEFAULT now(), CHECK (id > 0))"
        )
        conn.execute("INSERT INTO events DEFAULT VALUES")
        conn.execute("INSERT INTO events DEFAULT VALUES")
        conn.execute("CREATE VIEW recent_events AS SELECT * FROM events")
        conn.execute("CREATE TABLE moods (m mood)")
    run = backup(pg_source)
    with temp_database() as target_db:
        url = f"postgresql://postgres@127.0.0.1:5432/{target_db.dbname}"
        # moods needs the type mood, which the target lacks: neither table may arrive
        code, result = restore(
            run.pk, "--to", url, "--free-form", "--tables", "events,moods", "--suffix", "_r"
        )
        assert code == 1 and "mood" in result["error"]
        assert relations(target_db) == set()
        code, result = restore(
            run.pk, "--to", url, "--free-form", "--tables", "events", "--suffix", "_r"
        )
        assert code == 0, result
        assert any("view public.recent_events" in w for w in result["warnings"])
        assert {"events_r", "events_id_seq_r", "events_pkey_r"} <= relations(target_db)
        with target_db.connect() as conn:
            new_id = conn.execute("INSERT INTO events_r DEFAULT VALUES RETURNING id").fetchone()
        assert new_id == (3,)
