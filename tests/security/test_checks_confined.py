"""Issue 13: verification checks cannot read secrets, run commands or reach other data.

The attacks replayed, with the exact payloads of the report:
- on the built-in portal-db source, `SELECT group_concat(session_key) FROM django_session`
  and `SELECT username||':'||password FROM auth_user` showed live session keys and the
  admin's hash on the restore-test page;
- on the scratch server, `SELECT pg_read_file('/etc/passwd',0,190)`,
  `current_setting('data_directory')` and `SELECT string_agg(datname, ',') FROM
  pg_database` showed up as "observed" values (the checks ran as the superuser);
- `COPY (SELECT 1) TO PROGRAM ...` and `WITH d AS (DELETE FROM t RETURNING 1) SELECT
  count(*) FROM d` got past the validator or the read-only transaction.

Each layer is tested on its own: the validator (forms, admin, dr_apply), the run-time
re-check, the confined PostgreSQL role and SQLite connection (with the validator switched
off, as if the SQL had been written into the database directly), and the number-only rule.
Real PostgreSQL on 127.0.0.1:5432, real backups and restore tests.
"""

import json
import uuid
from pathlib import Path

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import RequestFactory

from backups.models import Source, System
from backups.validators import PORTAL_DB_CHECKS, check_problems
from dr_portal.lib import check_sql
from recovery.engine import check_role
from recovery.engine.checks import Outcome
from recovery.engine.verify import Phases, verify_postgres, verify_sqlite
from tests.factories import (
    PASSWORD,
    BackupJobFactory,
    DestinationFactory,
    RestoreTestFactory,
    SourceFactory,
    UserFactory,
)
from tests.marks import needs
from tests.recovery.pgutil import SERVER, fill_toolhub, pg_dump, temp_database

SESSION_KEYS = "SELECT group_concat(session_key) FROM django_session"
PASSWORD_HASHES = "SELECT username||':'||password FROM auth_user"
READ_FILE = "SELECT pg_read_file('/etc/passwd',0,190)"
DATA_DIRECTORY = "SELECT current_setting('data_directory')"
DATABASE_NAMES = "SELECT string_agg(datname, ',') FROM pg_database"
WRITABLE_CTE = "WITH d AS (DELETE FROM t RETURNING 1) SELECT count(*) FROM d"


def copy_program(marker: Path) -> str:
    return f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"


def checks(*sqls: str) -> list[dict]:
    return [{"name": f"c{i}", "sql": sql, "expect": "> 0"} for i, sql in enumerate(sqls, 1)]


@pytest.fixture
def no_validator(monkeypatch):
    """As if the SQL had been written into the database directly: only the run-time
    confinement stands between the check and the server."""
    monkeypatch.setattr(check_sql, "problem", lambda sql: None)


def server_secrets() -> list[str]:
    """What must never appear: the scratch server's data directory, its databases' names,
    and /etc/passwd."""
    with SERVER.connect() as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database")]
    return [data_dir, "root:x:0:0", *[n for n in names if n not in ("postgres",)]]


def leftover_check_roles() -> list[str]:
    with SERVER.connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                (check_role.ROLE_PREFIX.replace("_", r"\_") + "%",),
            )
        ]


# --- the validator: exactly one read-only statement -----------------------------

REFUSED = [
    WRITABLE_CTE,
    "SELECT 1; SELECT 2",
    "SELECT 1; DELETE FROM t",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "DO $$ BEGIN PERFORM 1; END $$",
    "CALL cleanup()",
    "SET statement_timeout = 0",
    "SELECT * INTO stolen FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR NO KEY UPDATE",
    "SELECT * FROM t FOR SHARE",
    "SELECT 1 /* ; DELETE FROM t */",
    "SELECT 1 -- hidden\n; DELETE FROM t",
    "SELECT E'\\'; DELETE FROM t; --'",
    "WITH x AS (UPDATE t SET a = 1 RETURNING 1) SELECT count(*) FROM x",
    "WITH x AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT count(*) FROM x",
    "SELECT nextval('s')",
    "SELECT count(*) FROM lo_import('/etc/passwd')",
    "SELECT query_to_xml('DELETE FROM t', true, true, '')",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "PRAGMA query_only = OFF",
    "SELECT load_extension('/tmp/evil.so')",
    "EXPLAIN ANALYZE DELETE FROM t",
    "(SELECT 1)",
    "SELECT 'unclosed",
    READ_FILE,
    DATA_DIRECTORY,
    DATABASE_NAMES,
    "x" * 5000,
]
ACCEPTED = [
    "SELECT COUNT(*) FROM workflows",
    "select count(*) from workflows where name <> 'a; DELETE FROM t -- x'",
    'SELECT count(*) FROM "odd;name"',
    "WITH recent AS (SELECT id FROM executions WHERE id > 10) SELECT count(*) FROM recent",
    "VALUES (1)",
    "TABLE counts",
    "SELECT count(*) FROM workflows;",
    "SELECT sum(length(substring(name FROM 1 FOR 2))) FROM workflows",
    "SELECT count(*) > 0 FROM workflows",
    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_validator_refuses_anything_but_one_read_only_query(sql):
    problems = check_problems([{"name": "x", "sql": sql, "expect": "> 0"}])
    assert problems and problems[0].startswith('check 1 "x": sql'), problems


@pytest.mark.parametrize("sql", ACCEPTED)
def test_validator_accepts_plain_queries(sql):
    assert check_problems([{"name": "x", "sql": sql, "expect": "> 0"}]) == []


def test_the_writable_cte_of_the_report_is_refused_with_a_clear_message():
    [problem] = check_problems([{"name": "x", "sql": WRITABLE_CTE, "expect": "> 0"}])
    assert "exactly one read-only query" in problem and "DELETE is not allowed" in problem


# --- the portal's own database: fixed checks, not editable -----------------------


@pytest.fixture
def portal(db):
    return Source.objects.get(is_portal_db=True)


def test_form_refuses_the_exfiltration_payloads_on_the_portal_database(portal, manager_client):
    for payload in (SESSION_KEYS, PASSWORD_HASHES, "SELECT count(*) FROM auth_user"):
        response = manager_client.post(
            f"/backups/sources/{portal.pk}/edit/",
            {
                "system": portal.system_id,
                "name": portal.name,
                "kind": portal.kind,
                "data_class": portal.data_class,
                "restore_test_schedule": portal.restore_test_schedule,
                "checks": json.dumps([{"name": "x", "sql": payload, "expect": "> 0"}]),
            },
        )
        assert response.status_code == 400
        errors = response.context["form"].errors
        assert "checks" in errors and "fixed verification checks" in errors["checks"][0]
    portal.refresh_from_db()
    assert portal.checks == []


def test_admin_form_refuses_checks_on_the_portal_database(portal, superuser):
    from django.contrib import admin

    model_admin = admin.site._registry[Source]
    request = RequestFactory().get("/")
    request.user = superuser
    form_class = model_admin.get_form(request, portal)
    data = {
        "system": portal.system_id,
        "name": portal.name,
        "kind": portal.kind,
        "data_class": portal.data_class,
        "restore_test_schedule": portal.restore_test_schedule,
        "is_portal_db": "on",
        "checks": json.dumps(
            [{"name": "x", "sql": "SELECT count(*) FROM auth_user", "expect": "> 0"}]
        ),
    }
    form = form_class(data=data, instance=portal)
    assert not form.is_valid()
    assert "fixed verification checks" in form.errors["checks"][0]


def test_model_refuses_checks_on_the_portal_database_but_accepts_none(portal):
    portal.checks = [{"name": "x", "sql": "SELECT count(*) FROM auth_user", "expect": "> 0"}]
    with pytest.raises(ValidationError) as caught:
        portal.full_clean()
    assert "checks" in caught.value.message_dict
    portal.checks = []
    portal.full_clean()
    assert portal.effective_checks == PORTAL_DB_CHECKS


def _apply(tmp_path, data, capsys) -> tuple[int, str]:
    path = tmp_path / "dr.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        call_command("dr_apply", str(path))
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_dr_apply_refuses_checks_on_the_portal_database(portal, tmp_path, capsys):
    data = {
        "sources": [
            {
                "name": "portal-db",
                "system": portal.system.name,
                "portal_db": True,
                "verify": [{"name": "sessions", "sql": SESSION_KEYS, "expect": "> 0"}],
            }
        ]
    }
    data["systems"] = [{"name": portal.system.name}]
    code, err = _apply(tmp_path, data, capsys)
    assert code == 1
    assert "sources[0].verify: The portal's own database has fixed verification checks" in err
    portal.refresh_from_db()
    assert portal.checks == []


def test_dr_apply_refuses_the_writable_cte(db, tmp_path, capsys):
    data = {
        "systems": [{"name": "tool-hub"}],
        "sources": [
            {
                "name": "toolhub-pg",
                "system": "tool-hub",
                "kind": "postgresql",
                "host": "127.0.0.1",
                "database": "tool_hub",
                "user": "toolhub",
                "verify": [{"name": "wipe", "sql": WRITABLE_CTE, "expect": "> 0"}],
            }
        ],
    }
    code, err = _apply(tmp_path, data, capsys)
    assert code == 1
    assert 'sources[0].verify: check 1 "wipe": sql must be exactly one read-only query' in err
    assert not Source.objects.filter(name="toolhub-pg").exists()


@pytest.mark.django_db(transaction=True)
def test_portal_db_restore_test_runs_only_the_fixed_checks_and_shows_no_secret(
    tmp_path, work_dir_settings
):
    """The report's attack, end to end: the payloads written into the row directly (as if a
    form had let them through), a real backup of the portal's database holding a live
    session and a password hash, a real restore test, the page rendered."""
    from django.contrib.auth.models import User
    from django.test import Client

    from backups.services import backup_now
    from recovery import restore_tests

    admin = User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    client = Client()
    client.force_login(admin)  # a live session in the portal database
    session_key = client.session.session_key
    password_hash = admin.password
    portal = portal_source()
    Source.objects.filter(pk=portal.pk).update(checks=checks(SESSION_KEYS, PASSWORD_HASHES))
    destination = DestinationFactory(name="local", kind="local", path=str(tmp_path / "store"))
    job = BackupJobFactory(name="portal-daily", source=portal)
    job.destinations.set([destination])
    assert backup_now(job).status == "succeeded"
    test = restore_tests.execute_restore_test(restore_tests.start_restore_test(portal))

    assert [c["name"] for c in test.checks] == [c["name"] for c in PORTAL_DB_CHECKS]
    assert all(c["outcome"] == Outcome.PASSED for c in test.checks), test.checks
    assert all(c["observed"].isdigit() for c in test.checks)
    manager = UserFactory(username="mona", role="manager")
    viewer = Client()
    viewer.force_login(manager)
    page = viewer.get(f"/recovery/tests/{test.pk}/").content.decode()
    source_page = viewer.get(f"/backups/sources/{portal.pk}/").content.decode()
    test.refresh_from_db()
    haystack = json.dumps(test.checks) + test.log + test.error + page + source_page
    for secret in (session_key, password_hash, password_hash.split("$")[-1]):
        assert secret not in haystack
    assert "group_concat" not in haystack and "django_session" not in haystack


def portal_source() -> Source:
    """The built-in portal-db source, made as its migration makes it when a transactional
    test before this one flushed the tables."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("backups.migrations.0002_portal_db_source")
    migration.create_portal_source(apps, None)
    return Source.objects.get(is_portal_db=True)


@pytest.fixture
def work_dir_settings(tmp_path, settings):
    path = tmp_path / "restore-work"
    path.mkdir()
    settings.DR_RESTORE_TMP_DIR = str(path)
    settings.DR_SCRATCH_PREFIX = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    return path


# --- PostgreSQL: the confined role --------------------------------------------


@pytest.fixture
@needs("postgres")
def archive(tmp_path):
    with temp_database() as source:
        fill_toolhub(source, workflows=5, executions=20)
        path = str(tmp_path / "dump.pgc")
        pg_dump(source, path)
    return path


@pytest.mark.postgres
def test_report_payloads_run_as_the_check_role_and_yield_nothing(archive, tmp_path, no_validator):
    marker = tmp_path / "copy-program-ran"
    payloads = [
        READ_FILE,
        DATA_DIRECTORY,
        DATABASE_NAMES,
        copy_program(marker),
        f"SELECT 1; {copy_program(marker)}",
        "SELECT 1; COMMIT; DROP TABLE workflows",
        "WITH d AS (DELETE FROM workflows RETURNING 1) SELECT count(*) FROM d",
        "SELECT lo_import('/etc/passwd')",
        "SELECT count(*) FROM dblink('dbname=postgres', 'SELECT 1') AS t(x int)",
    ]
    prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    result = verify_postgres(
        archive, SERVER, checks(*payloads), None, Phases(), scratch_prefix=prefix
    )
    outcomes = {c.sql: c for c in result.checks}
    for sql, check in outcomes.items():
        assert check.outcome != Outcome.PASSED, (sql, check)
        assert check.observed is None, (sql, check)
    assert "permission denied" in outcomes[READ_FILE].detail
    assert outcomes[DATABASE_NAMES].detail.startswith("the query returned a non-number")
    assert not marker.exists()
    shown = json.dumps([(c.observed, c.detail) for c in result.checks])
    for secret in server_secrets():
        assert secret not in shown, secret
    assert leftover_check_roles() == []


@pytest.mark.postgres
def test_check_role_is_unprivileged_and_reads_the_restored_tables(archive, no_validator):
    probes = [
        {"name": "rows", "sql": "SELECT count(*) FROM executions", "expect": "= 20"},
        {
            "name": "superuser",
            "sql": "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user",
            "expect": "= 0",
        },
        {
            "name": "memberships",
            "sql": "SELECT count(*) FROM pg_roles r WHERE r.rolname <> current_user"
            " AND pg_has_role(current_user, r.oid, 'USAGE')",
            "expect": "= 0",
        },
        {
            "name": "not the server user",
            "sql": "SELECT current_user <> 'postgres'",
            "expect": "= 1",
        },
        {
            "name": "read-only",
            "sql": "SELECT current_setting('transaction_read_only') = 'on'",
            "expect": "= 1",
        },
    ]
    prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    result = verify_postgres(archive, SERVER, probes, None, Phases(), scratch_prefix=prefix)
    assert [(c.name, c.outcome) for c in result.checks] == [
        (p["name"], Outcome.PASSED) for p in probes
    ], result.checks
    assert leftover_check_roles() == []


@pytest.mark.postgres
def test_error_messages_do_not_echo_data(archive):
    leak = {
        "name": "cast",
        "sql": "SELECT (SELECT name FROM workflows ORDER BY id LIMIT 1)::int",
        "expect": "> 0",
    }
    prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    [check] = verify_postgres(archive, SERVER, [leak], None, Phases(), scratch_prefix=prefix).checks
    assert check.outcome == Outcome.COULD_NOT_VERIFY and check.observed is None
    assert "invalid input syntax for type integer" in check.detail and "22P02" in check.detail
    assert "wf-1" not in check.detail


@pytest.mark.postgres
def test_text_results_are_never_stored(archive):
    text = {"name": "names", "sql": "SELECT min(name) FROM workflows", "expect": "> 0"}
    prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    [check] = verify_postgres(archive, SERVER, [text], None, Phases(), scratch_prefix=prefix).checks
    assert check.outcome == Outcome.FAILED and check.observed is None
    assert "non-number" in check.detail and "wf-" not in check.detail


@pytest.mark.postgres
def test_sweeper_drops_check_roles_a_killed_worker_left(db):
    from psycopg import sql

    with temp_database() as target:
        stale = f"{check_role.ROLE_PREFIX}1000000000_{uuid.uuid4().hex[:12]}"
        with SERVER.connect() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(stale)))
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(target.dbname), sql.Identifier(stale)
                )
            )
        with target.connect() as conn:
            conn.execute("CREATE TABLE t (a int)")
            conn.execute(sql.SQL("GRANT SELECT ON t TO {}").format(sql.Identifier(stale)))
        dropped = check_role.sweep_check_roles(SERVER, older_than_s=3600)
    assert stale in dropped
    assert stale not in leftover_check_roles()


@pytest.mark.postgres
def test_restore_checks_run_confined_too(tmp_path, work_dir_settings, db, no_validator):
    """The restore path (not a restore test): checks on the restored target run as a check
    role as well, which is gone afterwards."""
    from backups.services import backup_now
    from recovery import restores
    from recovery.engine.pg import drop_database

    with temp_database() as source_db:
        fill_toolhub(source_db, workflows=5, executions=20)
        system, _ = System.objects.get_or_create(name="tool-hub")
        source = SourceFactory(
            system=system,
            name="toolhub-pg",
            kind="postgresql",
            host=source_db.host,
            port=source_db.port,
            database=source_db.dbname,
            user=source_db.user,
            checks=checks(DATA_DIRECTORY, READ_FILE)
            + [{"name": "rows", "sql": "SELECT count(*) FROM executions", "expect": "= 20"}],
        )
        destination = DestinationFactory(name="local", kind="local", path=str(tmp_path / "store"))
        job = BackupJobFactory(name="pg-job", source=source)
        job.destinations.set([destination])
        run = backup_now(job)
        assert run.status == "succeeded", run.error
    target = f"dr_restored_{uuid.uuid4().hex[:8]}"
    try:
        restore = restores.execute_restore(
            restores.start_restore(
                source, target=f"postgresql://postgres@127.0.0.1:5432/{target}", backup_run=run
            )
        )
        outcomes = [(c["name"], c["outcome"], c["observed"]) for c in restore.checks]
        assert outcomes == [
            ("c1", "could_not_verify", None),
            ("c2", "could_not_verify", None),
            ("rows", "passed", "20"),
        ]
        shown = json.dumps([(c["observed"], c["detail"]) for c in restore.checks])
        for secret in server_secrets():
            if secret != target:
                assert secret not in shown, secret
        assert leftover_check_roles() == []
    finally:
        drop_database(SERVER, target)


# --- SQLite: read-only, query_only, no ATTACH, no extensions --------------------


def test_sqlite_checks_cannot_write_attach_or_load(tmp_path, no_validator):
    import sqlite3

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [("s3cret-a",), ("s3cret-b",)])
    conn.commit()
    conn.close()
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    payloads = [
        f"ATTACH DATABASE '{other}' AS other",
        "SELECT load_extension('/tmp/evil.so')",
        "PRAGMA query_only = OFF",
        "DELETE FROM workflows",
        "SELECT 1; DELETE FROM workflows",
        "CREATE TABLE planted (a)",
        "SELECT group_concat(name) FROM workflows",
        "SELECT (SELECT name FROM workflows LIMIT 1)",
    ]
    result = verify_sqlite(str(db), checks(*payloads), None, Phases())
    for check in result.checks:
        assert check.outcome != Outcome.PASSED and check.observed is None, check
        assert "s3cret" not in check.detail, check
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM workflows").fetchone()[0] == 2
    assert (
        conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'planted'").fetchone()[0] == 0
    )
    conn.close()
    ok = verify_sqlite(
        str(db),
        [{"name": "n", "sql": "SELECT count(*) FROM workflows", "expect": "= 2"}],
        None,
        Phases(),
    )
    assert ok.checks[0].outcome == Outcome.PASSED and ok.checks[0].observed == "2"


def test_stored_checks_are_revalidated_before_they_run(tmp_path):
    """SQL that reached the row without a form (the database itself) is refused at run time."""
    import sqlite3

    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    result = verify_sqlite(
        str(db), checks(WRITABLE_CTE, SESSION_KEYS + "; SELECT 1"), None, Phases()
    )
    assert [c.outcome for c in result.checks] == [Outcome.COULD_NOT_VERIFY] * 2
    assert all("exactly one read-only query" in c.detail for c in result.checks)


# --- a restore target whose user cannot create roles -----------------------------


@pytest.fixture
@needs("postgres")
def app_user_database():
    """A database owned by an ordinary login role, as an application's own server has."""
    from psycopg import sql

    user = f"dr_test_app_{uuid.uuid4().hex[:8]}"
    with SERVER.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
    try:
        with temp_database() as db:
            with SERVER.connect() as conn:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(db.dbname), sql.Identifier(user)
                    )
                )
            app = db.__class__(db.host, db.port, user, "", db.dbname)
            with app.connect() as conn:
                conn.execute("CREATE TABLE items (a int)")
                conn.execute("INSERT INTO items VALUES (1), (2)")
            yield app
    finally:
        with SERVER.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


def test_unprivileged_target_user_runs_the_checks_itself(app_user_database):
    probes = [{"name": "items", "sql": "SELECT count(*) FROM items", "expect": "= 2"}]
    [check] = check_role.run_confined_checks(app_user_database, probes, None, scratch=False)
    assert check.outcome == Outcome.PASSED and check.observed == "2"
    assert leftover_check_roles() == []


@pytest.mark.postgres
def test_privileged_target_user_that_cannot_create_a_role_runs_no_check(app_user_database):
    from psycopg import sql

    with SERVER.connect() as conn:
        conn.execute(
            sql.SQL("GRANT pg_read_server_files TO {}").format(
                sql.Identifier(app_user_database.user)
            )
        )
    probes = [{"name": "items", "sql": "SELECT count(*) FROM items", "expect": "= 2"}]
    [check] = check_role.run_confined_checks(app_user_database, probes, None, scratch=False)
    assert check.outcome == Outcome.COULD_NOT_VERIFY and check.observed is None
    assert "pg_read_server_files" in check.detail


# --- what was stored before the checks were confined ------------------------------


def test_upgrade_scrubs_values_that_older_versions_stored(db):
    """The report's leak sits in old rows: the observed text, the detail and the run log."""
    import importlib

    from django.apps import apps

    session_key = "k3y9sess10nkeyvalue"
    old = [
        {
            "name": "sessions",
            "sql": SESSION_KEYS,
            "expect": "> 0",
            "observed": session_key,
            "outcome": "could_not_verify",
            "detail": f"the query returned {session_key!r}, not a number",
            "previous": session_key,
        },
        {
            "name": "cast",
            "sql": "SELECT name::int FROM t",
            "expect": "> 0",
            "observed": None,
            "outcome": "could_not_verify",
            "detail": 'the query failed: invalid input syntax for type integer: "s3cret"',
            "previous": None,
        },
        {
            "name": "rows",
            "sql": "SELECT count(*) FROM t",
            "expect": "> 0",
            "observed": "500",
            "outcome": "passed",
            "detail": "500 > 0",
            "previous": "480",
        },
    ]
    log = (
        f"10:00:00 check sessions: could_not_verify (the query returned {session_key!r}, "
        "not a number)\n10:00:01 check rows: passed (500 > 0)\n"
    )
    portal = Source.objects.get(is_portal_db=True)
    test = RestoreTestFactory(source=portal, checks=old, log=log)
    migration = importlib.import_module("recovery.migrations.0009_scrub_check_values")
    migration.scrub(apps, None)
    test.refresh_from_db()
    stored = json.dumps(test.checks) + test.log
    assert session_key not in stored and "s3cret" not in stored
    assert test.checks[0]["observed"] is None and "non-number" in test.checks[0]["detail"]
    assert test.checks[2] == old[2]
    assert "10:00:01 check rows: passed (500 > 0)" in test.log


@pytest.mark.postgres
def test_scratch_server_user_with_only_createdb_runs_the_checks_itself(archive, no_validator):
    """A scratch server need not be reached as a superuser: a CREATEDB user owns the scratch
    database and what it restored, cannot make a check role, and is confined enough."""
    from psycopg import sql

    user = f"dr_test_scratch_{uuid.uuid4().hex[:8]}"
    with SERVER.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(user)))
    try:
        server = SERVER.__class__(SERVER.host, SERVER.port, user, "", "postgres")
        probes = [
            {"name": "rows", "sql": "SELECT count(*) FROM executions", "expect": "= 20"},
            {"name": "file", "sql": READ_FILE, "expect": "> 0"},
        ]
        prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
        result = verify_postgres(archive, server, probes, None, Phases(), scratch_prefix=prefix)
        assert [c.outcome for c in result.checks] == [Outcome.PASSED, Outcome.COULD_NOT_VERIFY]
        assert "permission denied" in result.checks[1].detail
    finally:
        with SERVER.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


def test_sqlite_check_that_never_ends_is_interrupted(tmp_path):
    import sqlite3
    import time

    from recovery.engine.checks import open_sqlite_confined, sqlite_query

    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    query = sqlite_query(open_sqlite_confined(str(db)), timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        query(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"
        )
    assert time.monotonic() - started < 5
    assert query("SELECT 1") == 1


def test_nan_is_a_non_number_not_a_crash():
    from decimal import Decimal

    from recovery.engine.checks import evaluate

    assert evaluate("> 0", Decimal("NaN"))[0] == Outcome.FAILED
    assert evaluate("> 0", float("nan"))[0] == Outcome.FAILED
