"""Replacing live tables with their backed-up copy (managers, names typed), on real
PostgreSQL: restored under a temporary name, counted, swapped in one transaction."""

import re

import pytest

from recovery.models import Restore
from tests.recovery.pgutil import table_fingerprint
from tests.recovery.test_partial_restore import relations, restore, source_url
from tests.support.data import backup

pytestmark = pytest.mark.django_db


def test_a_truncated_table_is_replaced_by_its_backup_and_the_live_one_kept(pg_source, work_dir):
    run = backup(pg_source)
    before = table_fingerprint(pg_source.db, "executions")
    with pg_source.db.connect() as conn:
        conn.execute("TRUNCATE executions")
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "executions",
        "--replace", "--confirm-tables", "executions",
    )  # fmt: skip
    assert code == 0, result
    assert table_fingerprint(pg_source.db, "executions") == before
    aside = result["kept_aside"]
    assert re.fullmatch(r"public\.executions_before_\d{14}", aside)
    assert table_fingerprint(pg_source.db, aside.split(".")[1])[0] == 0  # kept, not dropped
    names = relations(pg_source.db)
    # the restored table took the live names of its index and sequence
    assert {"executions_pkey", "executions_id_seq"} <= names
    assert not any(n.startswith("executions") and "_r2" in n for n in names)
    restored = Restore.objects.get()
    assert restored.replace_tables and restored.status == "succeeded"
    assert [(c["name"], c["observed"]) for c in restored.checks] == [
        ("rows in public.executions", "500")
    ]
    with pg_source.db.connect() as conn:  # new rows continue after the restored ones
        new_id = conn.execute(
            "INSERT INTO executions (workflow_id, status) VALUES (1, 'ok') RETURNING id"
        ).fetchone()[0]
    assert new_id == 501
    # its foreign key to workflows (not restored) comes with the SQL that adds it back
    note = next(w for w in result["warnings"] if "is not on the restored" in w)
    with pg_source.db.connect() as conn:
        conn.execute(note.split("to add it: ", 1)[1])
        assert (
            conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                "AND conrelid = 'executions'::regclass AND confrelid = 'workflows'::regclass"
            ).fetchone()[0]
            == 1
        )


def test_foreign_keys_to_a_replaced_table_are_reported_with_the_sql_to_repoint(pg_source, work_dir):
    run = backup(pg_source)
    with pg_source.db.connect() as conn:
        conn.execute("DELETE FROM workflows WHERE id NOT IN (SELECT workflow_id FROM executions)")
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "public.workflows",
        "--replace", "--confirm-tables", "public.workflows",
    )  # fmt: skip
    assert code == 0, result
    assert table_fingerprint(pg_source.db, "workflows")[0] == 50
    note = next(w for w in result["warnings"] if "of public.executions still" in w)
    assert "executions_workflow_id_fkey" in note and "public.workflows_before_" in note
    repoint = note.split("to repoint it: ", 1)[1]
    with pg_source.db.connect() as conn:
        conn.execute(repoint)
        target = conn.execute(
            "SELECT confrelid::regclass::text FROM pg_constraint "
            "WHERE conname = 'executions_workflow_id_fkey'"
        ).fetchone()[0]
    assert target == "workflows"


def test_replacing_without_the_exact_names_typed_changes_nothing(pg_source, work_dir):
    run = backup(pg_source)
    with pg_source.db.connect() as conn:
        conn.execute("TRUNCATE executions")
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "executions",
        "--replace", "--confirm-tables", "execution",
    )  # fmt: skip
    assert code == 1 and "type the exact names of the chosen tables" in result["error"]
    code, result = restore(
        run.pk, "--to", source_url(pg_source), "--free-form", "--tables", "executions",
        "--replace",
    )  # fmt: skip
    assert code == 1 and "type the exact names" in result["error"]
    assert Restore.objects.count() == 0
    assert table_fingerprint(pg_source.db, "executions")[0] == 0
