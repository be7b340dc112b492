"""Database-level properties, missing roles, old archives, subscriptions and sweeps."""

import io
import subprocess
import time
import uuid

import pytest

from recovery.engine import pg, pgarchive
from recovery.engine.verify import Phases, verify_postgres
from tests.factories import BackupJobFactory, SourceFactory, SystemFactory
from tests.recovery.conftest import run_test
from tests.recovery.pgutil import SERVER, pg_dump, scratch_databases, temp_database
from tests.support.data import backup

pytestmark = pytest.mark.postgres


def psql(db: str, sql: str):
    subprocess.run(
        ["psql", "-h", SERVER.host, "-U", SERVER.user, "-d", db, "-v", "ON_ERROR_STOP=1",
         "-q", "-c", sql],
        check=True, capture_output=True,
    )  # fmt: skip


# --- reading the archive -------------------------------------------------------------------


def test_rename_touches_only_the_database_identifier():
    stmt = "COMMENT ON DATABASE \"My db\" IS 'DATABASE \"My db\" it''s; DATABASE src'"
    assert pgarchive.rename_database_in(stmt, "My db", "new") == (
        "COMMENT ON DATABASE \"new\" IS 'DATABASE \"My db\" it''s; DATABASE src'"
    )
    assert (
        pgarchive.rename_database_in(
            "ALTER ROLE r IN DATABASE src SET x TO 'DATABASE src'", "src", "dst"
        )
        == "ALTER ROLE r IN DATABASE \"dst\" SET x TO 'DATABASE src'"
    )
    assert pgarchive.rename_database_in("GRANT CONNECT ON DATABASE src2 TO r", "src", "d") == (
        "GRANT CONNECT ON DATABASE src2 TO r"
    )
    assert pgarchive.split_statements("COMMENT ON DATABASE a IS 'x;\ny';\nGRANT b;\n") == [
        "COMMENT ON DATABASE a IS 'x;\ny'",
        "GRANT b",
    ]


def test_toc_is_read_from_a_file_and_from_a_stream_that_is_replayed_whole(tmp_path):
    with temp_database() as db:
        psql(db.dbname, f"CREATE TABLE t (v text); COMMENT ON DATABASE {db.dbname} IS 'c'")
        path = str(tmp_path / "a.dump")
        subprocess.run(
            ["pg_dump", "-Fc", "--create", "-h", db.host, "-U", db.user, "-f", path, db.dbname],
            check=True,
        )
    data = open(path, "rb").read()
    toc = pgarchive.read_toc_file(path)
    assert toc.dbname == db.dbname
    definition = pgarchive.definition(toc)
    assert definition.options["ENCODING"] == "UTF8"
    assert [s.kind for s in definition.properties] == ["owner", "comment"]
    with pytest.raises(pgarchive.NeedMore):
        pgarchive.read_toc(data[:200])

    def feed(out):
        for i in range(0, len(data), 1000):
            out.write(data[i : i + 1000])

    peeked = pgarchive.PeekedFeed(feed)
    assert peeked.peek_toc() == toc
    sink = io.BytesIO()
    peeked(sink)
    assert sink.getvalue() == data


# --- scratch: old archives, locale, subscriptions --------------------------------------------


def test_plain_archive_restores_in_scratch_with_the_source_collation(tmp_path, scratch_prefix):
    """Backups made before this change are plain `pg_dump -Fc` archives: they carry the
    DATABASE entry too, so a restore test of an old backup sorts like the source."""
    name = f"dr_test_{uuid.uuid4().hex[:10]}"
    psql("postgres", f"CREATE DATABASE {name} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                     "TEMPLATE template0")  # fmt: skip
    try:
        psql(name, "CREATE TABLE t (v text); INSERT INTO t VALUES ('B'), ('a'), ('b'), ('A')")
        path = str(tmp_path / "old.dump")
        pg_dump(SERVER.with_db(name), path)
    finally:
        pg.drop_database(SERVER, name)
    checks = [
        {"name": "icu order", "expect": "= 1",
         "sql": "SELECT count(*) FROM (SELECT string_agg(v, ',' ORDER BY v) s FROM t) x"
                " WHERE s = 'a,A,b,B'"},
    ]  # fmt: skip
    for archive in (path, lambda out: out.write(open(path, "rb").read())):  # file, stream
        outcome = verify_postgres(
            archive, SERVER, checks, None, Phases(), scratch_prefix=scratch_prefix
        )
        assert [c.outcome for c in outcome.checks] == ["passed"], outcome.checks
        assert outcome.warnings == []
    assert scratch_databases() == []


def test_scratch_of_a_read_only_template_with_a_subscription_is_always_dropped(
    tmp_path, scratch_prefix
):
    """Settings that would trap the scratch copy: a template mark (undroppable), read-only
    sessions (no ALTER SUBSCRIPTION), and a subscription (DROP DATABASE refuses)."""
    name = f"dr_test_{uuid.uuid4().hex[:10]}"
    pg.create_database(SERVER, name)
    try:
        psql(
            name,
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1); "
            "CREATE SUBSCRIPTION s CONNECTION 'host=127.0.0.1 dbname=postgres user=postgres' "
            "PUBLICATION p WITH (connect = false, slot_name = 'sources_slot')",
        )
        for sql in ("IS_TEMPLATE true", "SET default_transaction_read_only = on"):
            psql("postgres", f"ALTER DATABASE {name} {sql}")
        path = str(tmp_path / "t.dump")
        pg_dump(SERVER.with_db(name), path)
    finally:
        psql("postgres", f"ALTER DATABASE {name} IS_TEMPLATE false")
        pg.drop_database(SERVER, name)
    checks = [
        {"name": "rows", "expect": "= 1", "sql": "SELECT count(*) FROM t"},
    ]  # fmt: skip
    outcome = verify_postgres(path, SERVER, checks, None, Phases(), scratch_prefix=scratch_prefix)
    assert [c.outcome for c in outcome.checks] == ["passed"], outcome.checks
    assert any("subscription s restored disabled and without" in w for w in outcome.warnings)
    assert scratch_databases() == []


def test_no_database_entry_means_no_definition():
    toc = pgarchive.Toc("x", (1, 14, 0), ())
    assert pgarchive.definition(toc) is None


def test_a_locale_the_server_lacks_falls_back_with_a_warning():
    definition = pgarchive.DatabaseDefinition(
        name="src", owner="", options={"ENCODING": "UTF8", "LOCALE": "xx_NOPE.UTF-8"}
    )
    name = f"dr_test_{uuid.uuid4().hex[:10]}"
    try:
        warnings = pg.create_database(SERVER, name, definition)
        assert pg.database_exists(SERVER, name)
        assert len(warnings) == 1 and "xx_NOPE.UTF-8" in warnings[0]
        assert "sorting and comparisons may differ" in warnings[0]
    finally:
        pg.drop_database(SERVER, name)


def test_drop_database_survives_a_subscription():
    """Before: DROP DATABASE ... WITH (FORCE) raised ObjectInUse and the scratch stayed."""
    name = f"dr_test_{uuid.uuid4().hex[:10]}"
    pg.create_database(SERVER, name)
    try:
        psql(
            name,
            "CREATE SUBSCRIPTION s CONNECTION 'host=127.0.0.1 dbname=postgres user=postgres' "
            "PUBLICATION p WITH (connect = false, slot_name = 'someone_elses_slot')",
        )
    finally:
        pg.drop_database(SERVER, name)
    assert not pg.database_exists(SERVER, name)


def test_sweep_goes_on_past_a_database_it_cannot_drop(db, settings):
    from recovery.tasks import housekeeping

    old = int(time.time()) - 10 * 86400
    stuck, gone = (f"dr_scratch_{old}_{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in (stuck, gone):
        pg.create_database(SERVER, name)
    psql("postgres", f"ALTER DATABASE {stuck} IS_TEMPLATE true")  # DROP DATABASE refuses
    try:
        result = housekeeping()
        assert gone in result["scratch_dropped"]
        assert stuck not in result["scratch_dropped"]
        assert any(stuck in e and "template" in e for e in result["scratch_failed"])
    finally:
        psql("postgres", f"ALTER DATABASE {stuck} IS_TEMPLATE false")
        pg.drop_database(SERVER, stuck)
        pg.drop_database(SERVER, gone)


# --- restores: properties onto a target, and a target without the roles ---------------------


@pytest.mark.django_db
def test_restore_to_a_target_without_the_roles_names_them(local_destination, work_dir):
    from recovery import restores

    tag = uuid.uuid4().hex[:8]
    role, gone = f"dr_role_{tag}", f"dr_gone_{tag}"
    src, new = f"dr_test_{tag}", f"dr_test_{tag}_new"
    psql("postgres", f"CREATE ROLE {role}; CREATE ROLE {role}_r")
    try:
        pg.create_database(SERVER, src)
        for sql in (
            f"ALTER DATABASE {src} OWNER TO {role}",
            f"REVOKE CONNECT ON DATABASE {src} FROM PUBLIC",
            f"ALTER DATABASE {src} SET work_mem = '7MB'",
            f"COMMENT ON DATABASE {src} IS 'kept'",
        ):
            psql("postgres", sql)
        psql(
            src,
            f"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {role}; "
            f"GRANT SELECT ON t TO pg_monitor, {role}_r; "
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
            "REVOKE ALL ON FUNCTION f() FROM PUBLIC",
        )
        system = SystemFactory(name="roles")
        source = SourceFactory(
            system=system, name="roles-pg", kind="postgresql", data_class="critical",
            host=SERVER.host, port=SERVER.port, database=src, user=SERVER.user,
        )  # fmt: skip
        source.job = BackupJobFactory(source=source, destinations=[local_destination])
        run = backup(source)
        psql("postgres", f"ALTER ROLE {role} RENAME TO {gone}")  # the target lacks the roles
        psql("postgres", f"ALTER ROLE {role}_r RENAME TO {gone}_r")
        restore = restores.start_restore(
            source, target=f"postgresql://postgres@127.0.0.1:5432/{new}", backup_run=run
        )
        restore = restores.execute_restore(restore)
        assert restore.status == "succeeded", restore.error
        text = "\n".join(restore.warnings)
        assert f"do not exist on 127.0.0.1:5432: {role}, {role}_r;" in text
        assert f"database owner {role} could not be set" in text
        assert f"privilege not restored: GRANT SELECT ON TABLE public.t TO {role}_r" in text, text
        with SERVER.connect(dbname=new) as conn:
            # the privileges that could be applied were: PUBLIC still may not run f()
            assert conn.execute(
                "SELECT has_function_privilege('public', 'f()', 'EXECUTE'), "
                "has_table_privilege('pg_monitor', 't', 'SELECT')"
            ).fetchone() == (False, True)
        with SERVER.connect() as conn:
            owner, acl, comment = conn.execute(
                "SELECT pg_get_userbyid(datdba), datacl::text, "
                "shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (new,),
            ).fetchone()
            setting = conn.execute(
                "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d "
                "ON d.oid = s.setdatabase WHERE d.datname = %s",
                (new,),
            ).fetchone()
        assert owner == "postgres" and comment == "kept" and setting == (["work_mem=7MB"],)
        assert "=T/" in acl and "=Tc/" not in acl  # PUBLIC still may not connect
    finally:
        for name in (src, new):
            pg.drop_database(SERVER, name)
        psql("postgres", f"DROP ROLE IF EXISTS {role}; DROP ROLE IF EXISTS {gone}")
        psql("postgres", f"DROP ROLE IF EXISTS {role}_r; DROP ROLE IF EXISTS {gone}_r")


# --- globals: roles and tablespaces beside the backup ----------------------------------------


@pytest.mark.django_db
def test_globals_backup_brings_back_the_roles_a_restore_needs(
    local_destination, work_dir, tmp_path
):
    import json

    from django.core.management import call_command

    from recovery import restores

    tag = uuid.uuid4().hex[:8]
    role, gone = f"dr_role_{tag}", f"dr_gone_{tag}"
    src, first, second = f"dr_test_{tag}", f"dr_test_{tag}_a", f"dr_test_{tag}_b"
    psql("postgres", f"CREATE ROLE {role}; ALTER ROLE {role} SET work_mem = '3MB'")
    created = []
    try:
        pg.create_database(SERVER, src)
        psql("postgres", f"ALTER DATABASE {src} OWNER TO {role}")
        psql(src, f"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {role}")
        source = SourceFactory(
            system__name="globals", name="globals-pg",
            kind="postgresql", data_class="critical", host=SERVER.host, port=SERVER.port,
            database=src, user=SERVER.user, backup_globals=True,
        )  # fmt: skip
        source.job = BackupJobFactory(source=source, destinations=[local_destination])
        run = backup(source)
        info = run.manifest["globals"]
        assert info["error"] == "" and [c["destination"] for c in info["copies"]] == ["local"]
        script = tmp_path / "globals.sql"
        call_command("restore_globals", str(run.pk), "-o", str(script))
        text = script.read_text()
        assert f"CREATE ROLE {role};" in text and "3MB" in text
        assert "PASSWORD" not in text.upper().replace("NOPASSWORD", "")  # no password hashes

        psql("postgres", f"ALTER ROLE {role} RENAME TO {gone}")  # a server without the role
        url = "postgresql://postgres@127.0.0.1:5432/"
        restore = restores.execute_restore(
            restores.start_restore(source, target=url + first, backup_run=run)
        )
        assert restore.status == "succeeded", restore.error
        assert f"manage.py restore_globals {run.pk} --to {url}postgres --yes" in "\n".join(
            restore.warnings
        )

        out = io.StringIO()
        call_command(
            "restore_globals", str(run.pk), "--to", url + "postgres", "--yes", "--json", stdout=out
        )
        created = json.loads(out.getvalue())["created"]
        assert role in created
        restore = restores.execute_restore(
            restores.start_restore(source, target=url + second, backup_run=run)
        )
        assert restore.status == "succeeded", restore.error
        assert not any("do not exist" in w for w in restore.warnings), restore.warnings
        with SERVER.connect(dbname=second) as conn:
            owners = conn.execute(
                "SELECT (SELECT pg_get_userbyid(datdba) FROM pg_database "
                "WHERE datname = current_database()), "
                "(SELECT tableowner FROM pg_tables WHERE tablename = 't')"
            ).fetchone()
        assert owners == (role, role)
    finally:
        for name in (src, first, second):
            pg.drop_database(SERVER, name)
        # Every role the script created (other tests' roles too, if they were dropped since).
        for name in {*created, role, gone}:
            psql("postgres", f'DROP ROLE IF EXISTS "{name}"')


@pytest.mark.django_db
def test_restore_as_a_non_superuser_still_works_and_says_who_owns_what(pg_source, work_dir):
    """Before, new-database restores always dropped owners; keeping them needs a superuser."""
    from recovery import restores

    tag = uuid.uuid4().hex[:8]
    user, new = f"dr_restorer_{tag}", f"dr_test_{tag}_new"
    psql("postgres", f"CREATE ROLE {user} LOGIN CREATEDB")
    try:
        run = backup(pg_source)
        restore = restores.execute_restore(
            restores.start_restore(
                pg_source, target=f"postgresql://{user}@127.0.0.1:5432/{new}", backup_run=run
            )
        )
        assert restore.status == "succeeded", restore.error
        text = "\n".join(restore.warnings)
        assert f"{user} is not a superuser" in text
        assert "database owner postgres could not be set" in text
        with SERVER.connect(dbname=new) as conn:
            assert conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'workflows'"
            ).fetchone() == (user,)
    finally:
        pg.drop_database(SERVER, new)
        psql("postgres", f"DROP ROLE IF EXISTS {user}")


@pytest.mark.django_db
def test_retention_removes_the_globals_with_the_backup(pg_source, local_destination, work_dir):
    from datetime import timedelta
    from pathlib import Path

    from django.utils import timezone

    from backups import retention

    pg_source.backup_globals = True
    pg_source.save()
    old, new = backup(pg_source), backup(pg_source)
    local_destination.keep_days, local_destination.keep_last = 0, 1
    local_destination.save()

    def files(run):
        copy = run.manifest["globals"]["copies"][0]
        root = Path(local_destination.path)
        return [root / copy["location"], root / copy["manifest_location"]]

    assert all(p.is_file() for p in files(old) + files(new))
    retention.apply(local_destination, now=timezone.now() + timedelta(days=30))
    assert not any(p.exists() for p in files(old))
    assert all(p.is_file() for p in files(new))

    # Restore tests read the globals back too, and say when they cannot.
    test = run_test(pg_source, backup_run=new)
    assert test.status == "succeeded" and "roles and tablespaces read back" in test.log
    files(new)[0].unlink()
    test = run_test(pg_source, backup_run=new)
    assert test.status == "succeeded"
    assert any("roles and tablespaces could not be read back" in w for w in test.warnings)
