"""Acceptance: a portal restore recreates a PostgreSQL database exactly as plain
`pg_dump -Fc --create | pg_restore --create` does — to a new database, onto the source, and
in a scratch restore test — down to the locale, owner, ACL, settings, comment, every
object kind and every row.

The one intended difference: a subscription restored anywhere but onto the source loses
its replication slot (slot_name = NONE), so it can never take the source's slot.
"""

import re
import subprocess
import uuid

import pytest

from recovery.engine.pg import drop_database, rename_database
from tests.factories import BackupJobFactory, SourceFactory
from tests.marks import needs
from tests.recovery.conftest import run_test
from tests.recovery.pgutil import SERVER, scratch_databases
from tests.support.data import backup

pytestmark = [pytest.mark.django_db, pytest.mark.postgres, pytest.mark.slow]

SCHEMA = """
CREATE EXTENSION pgcrypto;
CREATE EXTENSION hstore;
CREATE EXTENSION citext;
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE letters (v text NOT NULL);
INSERT INTO letters VALUES ('b'), ('A'), ('B'), ('a');
CREATE TABLE measurements (
    id integer GENERATED ALWAYS AS IDENTITY,
    at date NOT NULL,
    v posint,
    doubled integer GENERATED ALWAYS AS (v * 2) STORED,
    m mood,
    r floatrange,
    h hstore,
    c citext,
    salt bytea DEFAULT gen_random_bytes(8)
) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO measurements (at, v, m, r, h, c)
    SELECT date '2024-06-01' + g, g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
           floatrange(g, g + 1), hstore('k', g::text), 'Name' || g
    FROM generate_series(1, 400) g;
CREATE TABLE parent (id integer PRIMARY KEY, note text);
CREATE TABLE child (extra integer) INHERITS (parent);
CREATE TABLE audit (msg text);
CREATE RULE note_rule AS ON INSERT TO parent WHERE NEW.note = 'rule'
    DO ALSO INSERT INTO audit VALUES ('ruled');
CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.extra := coalesce(NEW.extra, 0) + 1; RETURN NEW; END $$;
CREATE TRIGGER child_stamp BEFORE INSERT ON child FOR EACH ROW EXECUTE FUNCTION stamp();
INSERT INTO parent VALUES (1, 'rule'), (2, 'plain');
INSERT INTO child VALUES (3, 'kid', 5);
CREATE FUNCTION ddl_noop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER ddl_watch ON ddl_command_end EXECUTE FUNCTION ddl_noop();
CREATE MATERIALIZED VIEW per_mood AS SELECT m, count(*) AS n FROM measurements GROUP BY m;
CREATE TABLE docs (id integer, owner_name text);
ALTER TABLE docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_docs ON docs USING (owner_name = current_user);
INSERT INTO docs VALUES (1, 'alice'), (2, 'bob');
CREATE PUBLICATION letters_pub FOR TABLE letters;
DO $$ DECLARE o oid; BEGIN
    o := lo_from_bytea(0, 'large object one');
    EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', o, 'first blob');
    o := lo_from_bytea(0, 'large object two');
END $$;
"""


def psql(db: str, sql: str):
    subprocess.run(
        ["psql", "-h", SERVER.host, "-p", str(SERVER.port), "-U", SERVER.user, "-d", db,
         "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True, capture_output=True,
    )  # fmt: skip


def schema_text(db: str) -> str:
    """`pg_dump -s --create`, with the database name and the per-run \\restrict keys taken out."""
    out = subprocess.run(
        ["pg_dump", "-s", "--create", "-h", SERVER.host, "-U", SERVER.user, db],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    out = re.sub(r"^\\(un)?restrict .*$", "", out, flags=re.M)
    return out.replace(db, "DBNAME")


def db_properties(db: str) -> dict:
    with SERVER.connect() as conn:
        row = conn.execute(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype, daticulocale, "
            "datlocprovider, pg_get_userbyid(datdba), datacl::text, datconnlimit, "
            "shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (db,),
        ).fetchone()
        settings = conn.execute(
            "SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase "
            "LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = %s ORDER BY 1",
            (db,),
        ).fetchall()
    acl = (row[6] or "").replace(db, "DBNAME")
    return {"row": row[:6] + (acl,) + row[7:], "settings": settings}


def table_rows(db: str) -> dict:
    """md5 of each table's rows in a fixed order, plus large objects and their comments."""
    found = {}
    with SERVER.connect(dbname=db) as conn:
        tables = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', "
            "'information_schema', 'pg_toast') ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            found[table] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                f" FROM {table} t"
            ).fetchone()
        found["large objects"] = conn.execute(
            "SELECT string_agg(encode(lo_get(oid), 'escape') || ':' || "
            "coalesce(obj_description(oid, 'pg_largeobject'), ''), ',' ORDER BY oid) "
            "FROM pg_largeobject_metadata"
        ).fetchone()
        found["letters order"] = conn.execute(
            "SELECT string_agg(v, ',' ORDER BY v) FROM letters"
        ).fetchone()
    return found


def snapshot(db: str, *, slot_to_none: bool = False) -> dict:
    schema = schema_text(db)
    if slot_to_none:  # the one intended difference, see the module docstring
        schema = schema.replace("slot_name = 'fid_slot'", "slot_name = NONE")
    return {"schema": schema, "database": db_properties(db), "rows": table_rows(db)}


@pytest.fixture
@needs("postgres")
def fidelity_db(db):
    """The source: ICU en-US, owner/ACL/settings/comment, many object kinds; all cleaned up."""
    tag = uuid.uuid4().hex[:8]
    src, pub = f"dr_fid_{tag}", f"dr_fid_pub_{tag}"
    owner, reader = f"fid_owner_{tag}", f"fid_reader_{tag}"
    made = [src, pub]
    psql("postgres", f"CREATE ROLE {owner}")
    psql("postgres", f"CREATE ROLE {reader}")
    try:
        psql("postgres", f"CREATE DATABASE {pub}")
        psql(
            pub,
            "CREATE TABLE feed (id int PRIMARY KEY); CREATE PUBLICATION feed_pub FOR ALL TABLES",
        )
        psql(
            "postgres",
            f"CREATE DATABASE {src} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0",
        )
        for statement in (
            f"ALTER DATABASE {src} OWNER TO {owner}",
            f"REVOKE CONNECT, TEMPORARY ON DATABASE {src} FROM PUBLIC",
            f"GRANT CONNECT ON DATABASE {src} TO {reader}",
            f"ALTER DATABASE {src} SET work_mem = '8MB'",
            f"ALTER ROLE {reader} IN DATABASE {src} SET statement_timeout = '5s'",
            f"COMMENT ON DATABASE {src} IS 'fidelity source: it''s all here'",
        ):
            psql("postgres", statement)
        psql(src, SCHEMA)
        psql(
            src,
            f"ALTER TABLE letters OWNER TO {owner}; GRANT SELECT ON letters TO {reader}; "
            f"REVOKE ALL ON FUNCTION stamp() FROM PUBLIC; "
            f"CREATE SUBSCRIPTION fid_sub CONNECTION 'host=127.0.0.1 port=5432 dbname={pub} "
            f"user=postgres' PUBLICATION feed_pub "
            f"WITH (connect = false, slot_name = 'fid_slot', enabled = false)",
        )
        yield {"src": src, "made": made, "roles": (owner, reader)}
    finally:
        with SERVER.connect() as conn:  # also what a failed run left (staging, kept aside)
            made += [
                r[0]
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{src}%",)
                )
            ]
        for name in dict.fromkeys(made):
            drop_database(SERVER, name)
        psql("postgres", f"DROP ROLE IF EXISTS {owner}; DROP ROLE IF EXISTS {reader}")


def control_copy(src: str, made: list, tmp_path) -> str:
    """The plain tools' restore: pg_dump -Fc --create, then pg_restore --create (which can
    only recreate the original name: the source steps aside for a moment)."""
    dump = tmp_path / "control.dump"
    subprocess.run(
        ["pg_dump", "-Fc", "--create", "-h", SERVER.host, "-U", SERVER.user, "-f", dump, src],
        check=True,
    )
    control, parked = f"{src}_ctl", f"{src}_parked"
    made += [control, parked]
    rename_database(SERVER, src, parked)
    try:
        subprocess.run(
            ["pg_restore", "--create", "--exit-on-error", "-h", SERVER.host, "-U", SERVER.user,
             "-d", "postgres", dump],
            check=True, capture_output=True,
        )  # fmt: skip
        rename_database(SERVER, src, control)
    finally:
        rename_database(SERVER, parked, src)
    # Like the portal, leave the control's subscription without the source's slot.
    psql(control, "ALTER SUBSCRIPTION fid_sub SET (slot_name = NONE)")
    return control


def portal_source(name: str, local_destination):
    from backups.models import System

    system, _ = System.objects.get_or_create(name="fidelity")
    source = SourceFactory(
        system=system,
        name="fidelity-pg",
        kind="postgresql",
        data_class="critical",
        host=SERVER.host,
        port=SERVER.port,
        database=name,
        user=SERVER.user,
    )
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    return source


def test_portal_restores_equal_the_plain_tools(
    fidelity_db, local_destination, work_dir, tmp_path, monkeypatch
):
    from dr_portal.lib import check_sql
    from recovery import restores

    # Operators' checks may not read server catalogs or settings (SECURITY.md); this test's
    # checks must, to see the scratch database's own properties before it is dropped. They
    # still run as the confined check role.
    monkeypatch.setattr(check_sql, "problem", lambda sql: None)

    src, made = fidelity_db["src"], fidelity_db["made"]
    control = control_copy(src, made, tmp_path)
    expected = snapshot(control)
    assert expected["rows"]["letters order"] == ("a,A,b,B",)  # ICU en-US, not C
    assert snapshot(src, slot_to_none=True) == expected  # the control itself is faithful
    source = portal_source(src, local_destination)
    run = backup(source)

    # 1. to a new database
    new = f"{src}_new"
    made.append(new)
    restore = restores.start_restore(
        source, target=f"postgresql://postgres@127.0.0.1:5432/{new}", backup_run=run
    )
    restore = restores.execute_restore(restore)
    assert restore.status == "succeeded", restore.error
    assert snapshot(new) == expected
    assert any("fid_sub restored disabled and without a replication slot" in w
               for w in restore.warnings), restore.warnings  # fmt: skip

    # 2. a scratch restore test: checks see the source's collation, settings and rows
    rows = expected["rows"]
    source.checks = [
        {"name": "collation", "expect": "= 1",
         "sql": "SELECT count(*) FROM (SELECT string_agg(v, ',' ORDER BY v) s FROM letters) x "
                "WHERE s = 'a,A,b,B'"},
        {"name": "icu locale", "expect": "= 1",
         "sql": "SELECT count(*) FROM pg_database WHERE datname = current_database() "
                "AND datlocprovider = 'i' AND daticulocale = 'en-US'"},
        {"name": "settings", "expect": "= 1",
         "sql": "SELECT count(*) WHERE current_setting('work_mem') = '8MB'"},
        {"name": "measurements rows", "expect": "= 1",
         "sql": "SELECT count(*) FROM (SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) h"
                f" FROM public.measurements t) x WHERE h = '{rows['public.measurements'][1]}'"},
        {"name": "subscription has no slot", "expect": "= 1",
         "sql": "SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE d.datname = current_database() AND subname = 'fid_sub' "
                "AND subslotname IS NULL AND NOT subenabled"},
    ]  # fmt: skip
    source.save()
    test = run_test(source, backup_run=run)
    assert test.status == "succeeded", (test.error, test.checks)
    assert [c["outcome"] for c in test.checks] == ["passed"] * 5, test.checks
    assert scratch_databases() == []

    # 3. onto the source (the old one is kept aside)
    source.checks = source.checks[:4]  # onto the source the subscription keeps its slot
    source.save()
    psql(src, "TRUNCATE letters")  # the damage the restore repairs
    restore = restores.start_restore(source, onto_source=True, backup_run=run)
    restore = restores.execute_restore(restore)
    assert restore.status == "succeeded", restore.error
    aside = restore.kept_aside.rsplit("/", 1)[1]
    made.append(aside)
    # Onto the source the subscription keeps its slot name (disabled, ready to re-enable).
    assert snapshot(src, slot_to_none=True) == expected
    assert table_rows(aside)["public.letters"][0] == 0


def test_restore_test_of_a_database_with_a_subscription_passes_and_leaves_no_scratch(
    db, local_destination, work_dir, settings
):
    """The issue's case: DROP DATABASE ... WITH (FORCE) refused the scratch database."""
    from tests.recovery.pgutil import temp_database

    with temp_database() as pub, temp_database() as src:
        psql(pub.dbname, "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR ALL TABLES")
        psql(
            src.dbname,
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); "
            f"CREATE SUBSCRIPTION s CONNECTION 'host=127.0.0.1 dbname={pub.dbname} user=postgres'"
            " PUBLICATION p WITH (connect = false, slot_name = 'the_sources_slot')",
        )
        source = portal_source(src.dbname, local_destination)
        source.checks = [{"name": "rows", "sql": "SELECT count(*) FROM t", "expect": "= 1"}]
        source.save()
        backup(source)
        for jobs in (1, 2):  # streamed and unpacked
            settings.DR_RESTORE_JOBS = jobs
            test = run_test(source)
            assert test.status == "succeeded", test.error
            assert any("subscription s restored disabled" in w for w in test.warnings)
            assert scratch_databases() == []
            assert list(work_dir.iterdir()) == []
