"""PostgreSQL verification checks run as a confined role, never as the server's own user.

A check is SQL a manager wrote, run on a restored copy. Run as the scratch server's
superuser it could read server files (`pg_read_file`), settings (`data_directory`),
run programs (`COPY ... TO PROGRAM`) or, with `COMMIT;` in the text, write. So the
checks connect as a role made for this one run:

- LOGIN with a random password that is never stored, NOSUPERUSER, NOCREATEDB,
  NOCREATEROLE, NOREPLICATION, NOBYPASSRLS, NOINHERIT, member of nothing (so none of
  pg_read_server_files, pg_execute_server_program, pg_read_all_settings, pg_monitor,
  pg_read_all_data), one connection, valid for a day, read-only by default;
- CONNECT on the checked database and USAGE + SELECT on its schemas, tables and
  sequences: what the restored objects' owner (whoever pg_restore ran as) lets it read.
  Ownership is not reassigned: REASSIGN OWNED cannot move objects of the bootstrap
  superuser, and on a real restore target the owners are the application's own roles.

One role per run rather than one reused role: nothing long-lived to steal or to grow
privileges over time, no password to keep, and the name carries the time it was made,
so a sweeper can drop what a killed worker left behind (sweep_check_roles). The grants
are removed with DROP OWNED and the role dropped as soon as the checks are done.

A server user that cannot create roles (not superuser, no CREATEROLE) runs the checks
itself, but only when it is unprivileged in the same sense; otherwise the checks are
not run and say why.
"""

import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from recovery.engine.checks import CheckResult, Outcome, pg_query, run_checks
from recovery.engine.pg import PgServer, RestoreError

log = logging.getLogger(__name__)

ROLE_PREFIX = "dr_check_"
_ROLE_NAME = re.compile(rf"^{ROLE_PREFIX}(\d+)_[0-9a-f]+$")

# Built-in roles whose members read files, settings, statistics or every database, or
# signal other sessions: a role holding any of them is not confined.
PRIVILEGED_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_read_all_settings",
    "pg_read_all_stats",
    "pg_stat_scan_tables",
    "pg_monitor",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_signal_backend",
    "pg_checkpoint",
)


class CheckRoleError(RestoreError):
    """The checks cannot run confined on this server; the message says why."""


def new_role_name() -> str:
    return f"{ROLE_PREFIX}{int(time.time())}_{secrets.token_hex(6)}"


def _privileges(conn) -> list[str]:
    """Why the connected user is not confined (empty when it is)."""
    # CREATEDB is not on the list: a scratch server's user needs it, and a check (one
    # statement in a read-only transaction) cannot use it.
    row = conn.execute(
        "SELECT rolsuper, rolcreaterole, rolreplication, rolbypassrls"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    found = [
        flag
        for flag, value in zip(
            ("superuser", "createrole", "replication", "bypassrls"), row, strict=True
        )
        if value
    ]
    for role in PRIVILEGED_ROLES:
        member = conn.execute(
            "SELECT pg_has_role(current_user, oid, 'USAGE') FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        if member and member[0]:
            found.append(role)
    return found


def _create(admin_conn, role: str, password: str, dbname: str, scratch: bool):
    ident = sql.Identifier(role)
    # Only the SCRAM verifier travels in the statement (which a server may log), not the
    # password itself.
    verifier = admin_conn.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    ).decode()
    valid_until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    admin_conn.execute(
        sql.SQL(
            "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"
            " NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 1 PASSWORD {} VALID UNTIL {}"
        ).format(ident, sql.Literal(verifier), sql.Literal(valid_until))
    )
    admin_conn.execute(
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident)
    )
    admin_conn.execute(
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), ident)
    )
    schemas = [
        r[0]
        for r in admin_conn.execute(
            "SELECT nspname FROM pg_namespace"
            " WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'"
        )
    ]
    for schema in schemas:
        name = sql.Identifier(schema)
        admin_conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(name, ident))
        admin_conn.execute(
            sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(name, ident)
        )
        admin_conn.execute(
            sql.SQL("GRANT SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(name, ident)
        )
    if scratch:
        # Restored with --no-owner, every function belongs to the scratch server's user;
        # a SECURITY DEFINER one would run a check as that (super)user. The scratch copy
        # is thrown away, so its functions simply lose the definer's rights.
        for (signature,) in admin_conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.prosecdef AND n.nspname <> 'information_schema'"
            " AND n.nspname NOT LIKE 'pg\\_%'"
        ).fetchall():
            admin_conn.execute(
                sql.SQL("ALTER ROUTINE {} SECURITY INVOKER").format(sql.SQL(signature))
            )


def _drop(admin_conn, role: str):
    ident = sql.Identifier(role)
    admin_conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
    )
    admin_conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


@contextmanager
def confined_connection(target: PgServer, *, scratch: bool) -> Iterator[psycopg.Connection]:
    """A connection to target.dbname as a fresh confined role, dropped afterwards.

    `target` holds the server user's credentials; `scratch` says the database is a
    throw-away copy that may be changed (see _create).
    """
    role, password = new_role_name(), secrets.token_urlsafe(24)
    admin_conn = target.connect()
    # The restored database's own settings may make sessions read-only; granting must write.
    admin_conn.execute("SET default_transaction_read_only = off")
    try:
        try:
            with admin_conn.transaction():
                _create(admin_conn, role, password, target.dbname, scratch)
        except psycopg.errors.InsufficientPrivilege:
            # Not allowed to create a role (or to grant on the restored tables): the
            # server user may run the checks itself if it is as unprivileged as the role.
            found = _privileges(admin_conn)
            if found:
                raise CheckRoleError(
                    f"the checks did not run: user {target.user} can neither create a confined "
                    f"check role nor is it confined itself ({', '.join(found)})"
                ) from None
            with target.connect() as own:
                own.execute("SET default_transaction_read_only = on")
                yield own
            return
        except psycopg.Error as exc:
            raise CheckRoleError(
                f"the checks did not run: the confined check role could not be made "
                f"({type(exc).__name__})"
            ) from None
        try:
            checker = PgServer(target.host, target.port, role, password, target.dbname)
            try:
                conn = checker.connect()
            except RestoreError:
                raise CheckRoleError(
                    "the checks did not run: the confined check role could not log in "
                    "(does pg_hba.conf allow password logins for new roles?)"
                ) from None
            with conn:
                yield conn
        finally:
            try:
                _drop(admin_conn, role)
            except psycopg.Error as exc:  # the sweeper drops it later; it expires in a day
                log.warning("could not drop check role %s: %s", role, type(exc).__name__)
    finally:
        admin_conn.close()


def run_confined_checks(
    target: PgServer, checks: Iterable[dict], previous: dict | None, *, scratch: bool
) -> list[CheckResult]:
    """Run the checks on target.dbname as a confined role; a role that cannot be made or
    a login it cannot do turns every check into could_not_verify, never into a pass."""
    checks = list(checks)
    if not checks:
        return []
    try:
        with confined_connection(target, scratch=scratch) as conn:
            return run_checks(pg_query(conn), checks, previous)
    except CheckRoleError as exc:
        reason = str(exc)
        return [
            CheckResult(
                (c.get("name") or "").strip() or f"check {i}",
                (c.get("sql") or "").strip(),
                (c.get("expect") or "").strip(),
                None,
                Outcome.COULD_NOT_VERIFY,
                reason,
            )
            for i, c in enumerate(checks, 1)
        ]


def sweep_check_roles(server: PgServer, older_than_s: float = 86400) -> list[str]:
    """Drop check roles a killed worker left behind (with their grants); return their names."""
    now = time.time()
    dropped = []
    with server.connect() as conn:
        roles = conn.execute(
            "SELECT oid, rolname FROM pg_roles WHERE rolname LIKE %s",
            (ROLE_PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
        for oid, role in roles:
            match = _ROLE_NAME.match(role)
            if not match or now - int(match.group(1)) <= older_than_s:
                continue
            databases = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT d.datname FROM pg_shdepend s"
                    " JOIN pg_database d ON d.oid = s.dbid WHERE s.refobjid = %s",
                    (oid,),
                )
            ]
            try:
                for dbname in databases:
                    with server.connect(dbname=dbname) as other:
                        other.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                _drop(conn, role)
            except (psycopg.Error, RestoreError) as exc:
                log.warning("could not drop check role %s: %s", role, type(exc).__name__)
                continue
            dropped.append(role)
    return dropped
