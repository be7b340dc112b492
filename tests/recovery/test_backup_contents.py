"""Contents of a backup read from its real artifact, cached per run, listed and searched."""

import json
import os
import time
from io import StringIO

import pytest
from django.core.management import call_command

from recovery.models import BackupContents
from tests.factories import BackupJobFactory, SourceFactory
from tests.recovery.conftest import make_sqlite_db
from tests.recovery.pgutil import temp_database
from tests.support.data import backup

pytestmark = pytest.mark.django_db


def contents_json(*args) -> dict:
    out = StringIO()
    call_command("backup_contents", *map(str, args), "--json", stdout=out)
    return json.loads(out.getvalue())


def by_name(result: dict) -> dict:
    return {(i["type"], i.get("schema", ""), i["name"]): i for i in result["items"]}


def test_postgres_contents_list_tables_rows_sequences_and_are_cached(pg_source, work_dir):
    with pg_source.db.connect() as conn:
        conn.execute("CREATE VIEW busy AS SELECT * FROM executions WHERE status <> 'ok'")
        conn.execute("CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
        conn.execute("CREATE SCHEMA audit")
        conn.execute("CREATE TABLE audit.log (line text)")
        conn.execute("INSERT INTO audit.log VALUES (E'two\\nlines'), ('one')")
        conn.execute("SELECT lo_from_bytea(0, 'large object')")
    run = backup(pg_source)
    result = contents_json(run.pk)
    items = by_name(result)
    assert items[("table", "public", "workflows")]["rows"] == 50
    assert items[("table", "public", "executions")]["rows"] == 500
    assert items[("table", "audit", "log")]["rows"] == 2  # an embedded newline is one row
    assert items[("table", "public", "executions")]["bytes"] > 500 * 32  # md5 text per row
    assert ("sequence", "public", "workflows_id_seq") in items
    assert ("view", "public", "busy") in items
    assert ("function", "public", "answer()") in items
    assert ("schema", "", "audit") in items
    assert items[("large objects", "", "BLOBS")]["objects"] == 1
    assert ("foreign key", "public", "executions executions_workflow_id_fkey") in items
    assert result["summary"]["table"] == 3 and result["database"] == pg_source.db.dbname
    assert list(work_dir.iterdir()) == []  # the plaintext went with its private directory

    # cached: the artifact is no longer read (its copy removed, the listing still answers)
    for copy in run.copies.all():
        os.unlink(os.path.join(copy.destination.path, copy.location))
    assert contents_json(run.pk)["items"] == result["items"]
    assert BackupContents.objects.filter(run=run).count() == 1
    searched = contents_json(run.pk, "--search", "exec")
    assert {i["name"] for i in searched["items"]} >= {"executions", "executions_id_seq"}
    assert all("exec" in i["name"] for i in searched["items"])


def test_thousand_table_dump_lists_from_cache_in_under_a_second(db, local_destination, work_dir):
    with temp_database() as pg:
        with pg.connect() as conn:
            # 100 tables per transaction: 1,000 in one would need more lock slots than a
            # default server has (max_locks_per_transaction)
            for first in range(1, 1001, 100):
                conn.execute(
                    f"DO $$ BEGIN FOR i IN {first}..{first + 99} LOOP EXECUTE format("
                    "'CREATE TABLE t%s (id serial PRIMARY KEY, v text); "
                    "INSERT INTO t%s (v) SELECT ''x'' FROM generate_series(1, %s)', i, i, i % 7);"
                    " END LOOP; END $$"
                )
                conn.commit()
        source = SourceFactory(
            postgresql=True,
            system__name="wide",
            name="wide-pg",
            host=pg.host,
            port=pg.port,
            database=pg.dbname,
            user=pg.user,
        )
        source.job = BackupJobFactory(source=source, destinations=[local_destination])
        run = backup(source)
    first = contents_json(run.pk)  # reads the artifact once
    assert first["summary"]["table"] == 1000 and first["summary"]["sequence"] == 1000
    started = time.monotonic()
    again = contents_json(run.pk)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"listing 1,000 tables from the cache took {elapsed:.2f} s"
    assert by_name(again)[("table", "public", "t13")]["rows"] == 13 % 7


def test_files_contents_are_the_tar_index(db, tmp_path, local_destination, work_dir):
    root = tmp_path / "conf"
    (root / "nginx").mkdir(parents=True)
    (root / "nginx" / "site.conf").write_text("server {}\n")
    (root / "secret.env").write_text("A=1\n")
    os.chmod(root / "secret.env", 0o600)
    os.utime(root / "secret.env", (1_700_000_000, 1_700_000_000))
    os.symlink("nginx/site.conf", root / "current")
    source = SourceFactory(system__name="sys", name="conf", kind="files", path=str(root))
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    result = contents_json(backup(source).pk)
    items = {i["name"]: i for i in result["items"]}
    secret = next(v for k, v in items.items() if k.endswith("secret.env"))
    assert secret["type"] == "file" and secret["bytes"] == 4 and secret["mode"] == "0600"
    assert secret["mtime"] == "2023-11-14T22:13:20+00:00"
    link = next(v for k, v in items.items() if k.endswith("current"))
    assert link["type"] == "symlink" and link["link"] == "nginx/site.conf"
    assert any(k.endswith("nginx") and v["type"] == "dir" for k, v in items.items())


def test_sqlite_contents_count_rows(db, tmp_path, local_destination, work_dir):
    path = make_sqlite_db(tmp_path / "app.db", rows=37)
    source = SourceFactory(sqlite=True, system__name="sys", name="app-db", path=str(path))
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    items = by_name(contents_json(backup(source).pk))
    assert items[("table", "", "workflows")]["rows"] == 37


def test_unknown_run_is_a_clear_error(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no backup run #999"):
        call_command("backup_contents", "999")


def test_run_page_shows_searchable_tree_once_read(pg_source, work_dir, operator_client, sync_queue):
    run = backup(pg_source)
    page = operator_client.get(f"/recovery/runs/{run.pk}/contents/")
    assert b"Read contents" in page.content and b"executions" not in page.content
    sync_queue(operator_client.post, f"/recovery/runs/{run.pk}/contents/read/")
    page = operator_client.get(f"/recovery/runs/{run.pk}/contents/", {"q": "workfl"})
    text = page.content.decode()
    assert "workflows_id_seq" in text and "<code>executions</code>" not in text
    assert 'type="search"' in text and "matching" in text
    assert b"run-contents" in operator_client.get(run.get_absolute_url()).content


def test_compare_finds_the_backup_where_a_table_lost_its_rows(pg_source, work_dir, viewer_client):
    before = backup(pg_source)
    with pg_source.db.connect() as conn:
        conn.execute("DELETE FROM executions WHERE id > 100")
        conn.execute("CREATE TABLE notes (body text)")
    after = backup(pg_source)
    out = StringIO()
    call_command(
        "backup_contents", str(after.pk), "--compare", str(before.pk), "--json", stdout=out
    )
    rows = json.loads(out.getvalue())["items"]
    first = rows[0]
    assert first["name"] == "public.executions" and first["state"] == "changed"
    assert (first["rows_before"], first["rows_after"], first["rows_delta"]) == (500, 100, -400)
    assert first["bytes_delta"] < 0
    states = {r["name"]: r["state"] for r in rows}
    assert states == {
        "public.executions": "changed",
        "public.notes": "added",
        "public.workflows": "same",
    }
    page = viewer_client.get(f"/recovery/runs/{after.pk}/compare/{before.pk}/")
    assert page.status_code == 200 and b"-400" in page.content


def test_compare_refuses_backups_of_different_sources(pg_source, sqlite_source, work_dir):
    from django.core.management.base import CommandError

    one, other = backup(pg_source), backup(sqlite_source)
    with pytest.raises(CommandError, match="not backups of the same source"):
        call_command("backup_contents", str(one.pk), "--compare", str(other.pk))
