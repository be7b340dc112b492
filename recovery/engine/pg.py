"""PostgreSQL: scratch databases on a configured server and `pg_restore` into them."""

import logging
import os
import re
import secrets as _secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from dr_portal.lib.redact import redact
from recovery.engine import procs
from recovery.engine.pgarchive import LOCALE_OPTIONS, split_statements

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "dr_scratch_"
# dr_scratch_<epoch>_<random>: the epoch lets a sweeper drop what a killed worker left.
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)_[0-9a-f]+$")
_NAME_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
CONNECT_TIMEOUT = 10


class RestoreError(Exception):
    """A restore step failed; the message names the cause and carries no secret."""


@dataclass(frozen=True)
class PgServer:
    """Where to connect: host/port/user/password and the database to use."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = field(default="", repr=False)
    dbname: str = "postgres"

    @classmethod
    def from_url(cls, url: str, *, password: str = "") -> "PgServer":
        """Parse postgresql://user[:password]@host[:port]/dbname; raise ValueError on nonsense."""
        parts = urlsplit(url or "")
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError("give a PostgreSQL URL like postgresql://user@host:5432/dbname")
        try:
            port = parts.port or 5432
        except ValueError:
            raise ValueError("the port in the PostgreSQL URL is not a number") from None
        dbname = unquote(parts.path.lstrip("/")) or "postgres"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or "") or password,
            dbname=dbname,
        )

    def with_db(self, dbname: str) -> "PgServer":
        return replace(self, dbname=dbname)

    def public_url(self) -> str:
        """The URL without the password, safe to show and store."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def env(self) -> dict:
        """Environment for libpq programs: the password travels here, never in argv."""
        env = {"PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def connect(self, *, autocommit: bool = True, dbname: str | None = None):
        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password or None,
                dbname=dbname or self.dbname,
                connect_timeout=CONNECT_TIMEOUT,
                autocommit=autocommit,
                application_name="dr-portal",
            )
        except psycopg.OperationalError as exc:
            raise RestoreError(
                f"cannot connect to PostgreSQL at {self.host}:{self.port} "
                f"(database {dbname or self.dbname}): {_first_line(exc, self.password)}"
            ) from None

    def secrets(self) -> list[str]:
        return [self.password] if self.password else []


def _first_line(exc: Exception, *secrets: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text, secrets=[s for s in secrets if s])


def check_name(name: str) -> str:
    if not _NAME_OK.match(name or ""):
        raise RestoreError(f"{name!r} is not a usable database name")
    return name


def new_scratch_name(prefix: str = SCRATCH_PREFIX) -> str:
    return f"{prefix}{int(time.time())}_{_secrets.token_hex(4)}"


def _execute(server: PgServer, statement, what: str):
    """Run one statement on `server`; a PostgreSQL error becomes a RestoreError naming `what`."""
    with server.connect() as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            raise RestoreError(f"{what}: {_first_line(exc, server.password)}") from None


def create_database(server: PgServer, name: str, definition=None) -> list[str]:
    """Create `name`; with the archive's definition, in its encoding and locale.

    Collation and ctype cannot change after CREATE DATABASE, so they are set here (from
    template0, the only template that takes another locale). Returns warnings: when the
    target server lacks the locale, the database is created with the server's defaults
    and the warning says that sorting may differ from the source.
    """
    ident = sql.Identifier(check_name(name))
    plain = sql.SQL("CREATE DATABASE {}").format(ident)
    options = getattr(definition, "options", None)
    if not options:
        _execute(server, plain, f"creating database {name} failed")
        return []
    parts = [sql.SQL("TEMPLATE = template0")]
    for key in LOCALE_OPTIONS:
        value = options.get(key)
        if value is None:
            continue
        if key != "LOCALE_PROVIDER":  # keys come from LOCALE_OPTIONS, values are literals
            parts.append(sql.SQL(key + " = ") + sql.Literal(value))
        elif value in ("icu", "builtin"):
            # libc is the default, and servers before 15 know no LOCALE_PROVIDER at all
            parts.append(sql.SQL("LOCALE_PROVIDER = " + value))
    statement = sql.SQL("CREATE DATABASE {} WITH ").format(ident) + sql.SQL(" ").join(parts)
    try:
        _execute(server, statement, "creating the database")
        return []
    except RestoreError as exc:
        _execute(server, plain, f"creating database {name} failed")
        return [
            f"the database could not be created as the backup describes it "
            f"({definition.describe()}): {exc}; it was created with the server's default "
            "encoding and locale, so text sorting and comparisons may differ from the source"
        ]


def apply_properties(server: PgServer, name: str, definition, *, scratch: bool) -> list[str]:
    """Apply the archive's owner, ACL, settings and comment to database `name`.

    Each statement on its own, so one that cannot apply (an owner or grantee role missing
    on this server) is reported and the rest still apply. A scratch database gets only
    settings and comment: owner, grants and per-role settings name roles that need not
    exist there (and checks must still connect), and a template mark would make it
    undroppable.
    """
    warnings = []
    with server.connect() as conn:
        for stmt in definition.for_target(name):
            if scratch and (stmt.needs_roles or stmt.kind == "template"):
                continue
            try:
                conn.execute(stmt.sql)
            except psycopg.Error as exc:
                reason = _first_line(exc, server.password)
                if stmt.kind == "owner":
                    warnings.append(
                        f"database owner {definition.owner} could not be set ({reason}): "
                        f"the database is owned by {server.user} instead"
                    )
                else:
                    warnings.append(
                        f"database {stmt.kind} not applied: {stmt.sql[:300]} ({reason})"
                    )
    return warnings


def missing_roles(server: PgServer, roles) -> list[str]:
    """The roles among `roles` that do not exist on `server`, sorted."""
    if not roles:
        return []
    with server.connect() as conn:
        present = {
            r[0]
            for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (sorted(roles),)
            )
        }
    return sorted(set(roles) - present)


def is_superuser(server: PgServer) -> bool:
    with server.connect() as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _subscriptions(conn) -> list[tuple[str, bool, str | None]]:
    return conn.execute(
        "SELECT s.subname, s.subenabled, s.subslotname FROM pg_subscription s "
        "JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = current_database() "
        "ORDER BY s.subname"
    ).fetchall()


def neutralise_subscriptions(db: PgServer, *, keep_slot: bool = False) -> list[str]:
    """Leave every subscription in `db` disabled and (unless keep_slot) without a slot.

    pg_restore creates subscriptions with connect = false (disabled, nothing done on the
    publisher) but still naming the source's replication slot: enabling one, or dropping
    it, would act on the slot the source is using. Without a slot it can do neither.
    Returns a note per subscription for the run's report.
    """
    notes = []
    try:
        with db.connect() as conn:
            for subname, enabled, slot in _subscriptions(conn):
                ident = sql.Identifier(subname)
                if enabled:
                    conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
                if slot and not keep_slot:
                    conn.execute(
                        sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident)
                    )
                    notes.append(
                        f"subscription {subname} restored disabled and without a replication "
                        f"slot (the source uses slot {slot}); it never connected to its publisher"
                    )
                else:
                    notes.append(
                        f"subscription {subname} restored disabled (slot {slot or 'none'}): "
                        "enable it once nothing else uses that slot"
                    )
    except psycopg.Error as exc:
        raise RestoreError(
            f"disabling subscriptions in {db.dbname} failed: {_first_line(exc, db.password)}"
        ) from None
    return notes


def _drop_subscriptions(server: PgServer, name: str):
    """Drop the subscriptions in `name`, slot detached so nothing is done on the publisher."""
    with server.connect(dbname=name) as conn:
        # the database's own settings may make sessions read-only; this one must write
        conn.execute("SET default_transaction_read_only = off")
        for subname, enabled, slot in _subscriptions(conn):
            ident = sql.Identifier(subname)
            if enabled:
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(ident))
            if slot:
                conn.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(ident))
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(ident))


def drop_database(server: PgServer, name: str, *, attempts: int = 3, pause_s: float = 1.0):
    """Drop even while something is still connected (PostgreSQL 13+ FORCE) or subscribed.

    DROP DATABASE refuses a database with subscriptions even WITH (FORCE) (ObjectInUse):
    they are dropped first, without their slot. Retried a few times (a session can hold
    the database for a moment); then RestoreError naming it.
    """
    reason = ""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(attempts):
        try:
            with server.connect() as conn:
                conn.execute(drop)
            return
        except psycopg.errors.ObjectInUse as exc:
            reason = _first_line(exc, server.password)
            try:
                _drop_subscriptions(server, name)
                continue  # at once: nothing to wait for
            except psycopg.Error as sub_exc:
                reason += f"; dropping its subscriptions: {_first_line(sub_exc, server.password)}"
            except RestoreError as sub_exc:
                reason += f"; dropping its subscriptions: {sub_exc}"
        except psycopg.Error as exc:
            reason = _first_line(exc, server.password)
        except RestoreError as exc:
            reason = str(exc)
        if attempt + 1 < attempts:
            time.sleep(pause_s * (attempt + 1))
    raise RestoreError(f"could not drop database {name}: {reason}")


def database_exists(server: PgServer, name: str) -> bool:
    with server.connect() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


@contextmanager
def scratch_database(server: PgServer) -> Iterator[PgServer]:
    """A fresh, uniquely named database that is always dropped afterwards."""
    name = new_scratch_name()
    create_database(server, name)
    try:
        yield server.with_db(name)
    finally:
        drop_database(server, name)


def sweep_scratch(
    server: PgServer, older_than_s: float = 86400, errors: list[str] | None = None
) -> list[str]:
    """Drop scratch databases a killed worker left behind; return their names.

    One that cannot be dropped is logged (and added to `errors`) and the sweep goes on.
    """
    now = time.time()
    dropped = []
    with server.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (SCRATCH_PREFIX.replace("_", r"\_") + "%",),
            )
        ]
    for name in names:
        match = _SCRATCH_NAME.match(name)
        if match and now - int(match.group(1)) > older_than_s:
            try:
                drop_database(server, name)
            except RestoreError as exc:
                log.warning("scratch sweep: %s", exc)
                if errors is not None:
                    errors.append(str(exc))
                continue
            dropped.append(name)
    return dropped


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RestoreError(f"{name} is not installed or not on PATH")
    return found


# pg_restore's sessions: index and key builds sort in memory instead of spilling to disk
# (the server default, 64 MB, spills for a table of a few million rows), and commits do not
# wait for WAL flushes (what they wrote is visible at once all the same). A server crash
# mid-restore can lose only a half-restored scratch or staging database, dropped or retried
# anyway; a restore is published by the swap's rename, a synchronous commit that flushes
# every WAL record before its own.
# Measured: restores 0.78x the time of the server defaults (bench/RESULTS.md).
RESTORE_SESSION = "-c synchronous_commit=off -c maintenance_work_mem=256MB"


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def pg_restore(
    archive,
    target: PgServer,
    *,
    jobs: int | None = None,
    timeout: float | None = None,
    cancelled=None,
    keep_ownership: bool = False,
) -> str:
    """Restore a custom-format archive into `target` (which must exist).

    `archive` is a file path, or a function that writes the archive into pg_restore's
    standard input (a serial restore: parallel jobs need a seekable file).
    Scratch restores drop ownership and grants (the roles need not exist there); a
    restore onto the source's own server keeps them (keep_ownership=True).
    """
    streamed = callable(archive)
    args = [
        tool("pg_restore"),
        *([] if keep_ownership else ["--no-owner", "--no-privileges"]),
        "--exit-on-error",
        *([] if streamed else [f"--jobs={jobs or default_jobs()}"]),
        f"--host={target.host}",
        f"--port={target.port}",
        f"--username={target.user}",
        f"--dbname={target.dbname}",
        *([] if streamed else [archive]),
    ]
    try:
        env = target.env()
        env["PGOPTIONS"] = f"{os.environ.get('PGOPTIONS', '')} {RESTORE_SESSION}".strip()
        return procs.run(
            args,
            env=env,
            timeout=timeout,
            secrets=target.secrets(),
            cancelled=cancelled,
            feed=archive if streamed else None,
        )
    except procs.ProcessError as exc:
        raise RestoreError(f"pg_restore failed: {exc}") from None


def restore_privileges(target: PgServer, toc) -> list[str]:
    """Apply the archive's GRANTs and REVOKEs one statement at a time; name those that fail.

    For a target that lacks some roles: the main restore then runs with --no-privileges
    (an ACL naming a missing role would stop it), which would also drop every REVOKE ...
    FROM PUBLIC (functions executable by everyone again). pg_restore runs one object's
    ACL as a single query, so one missing grantee would lose that object's other grants
    too; statement by statement, everything that can apply does.
    """
    failures = []
    with target.connect() as conn:
        for entry in toc.entries:
            if entry.desc not in ("ACL", "DEFAULT ACL") or entry.tag.startswith("DATABASE "):
                continue
            for stmt in split_statements(entry.defn):
                try:
                    conn.execute(stmt)
                except psycopg.Error as exc:
                    reason = _first_line(exc, target.password)
                    failures.append(f"privilege not restored: {stmt[:300]} ({reason})")
        conn.execute("RESET SESSION AUTHORIZATION")
    if len(failures) > 20:
        failures = failures[:20] + [f"{len(failures)} privilege statements in all not restored"]
    return failures


def rename_database(server: PgServer, old: str, new: str):
    """Rename a database that applications may be using right now.

    New connections are refused while it happens (an application that reconnects at once
    would otherwise keep the rename failing with "being accessed by other users"), the
    sessions on it are closed, and the database takes connections again under its new name.
    """
    old_id, new_id = sql.Identifier(old), sql.Identifier(check_name(new))
    with server.connect() as conn:
        row = conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (old,))
        allowed = bool((row.fetchone() or [False])[0])
        if allowed:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(old_id))
        renamed = False
        try:
            for attempt in range(1, 4):
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (old,),
                )
                try:
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(old_id, new_id))
                    renamed = True
                    break
                except psycopg.errors.ObjectInUse:
                    if attempt == 3:
                        raise RestoreError(
                            f"cannot rename database {old}: sessions on it would not close"
                        ) from None
                    time.sleep(0.5 * attempt)
        finally:
            if allowed:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                        new_id if renamed else old_id
                    )
                )


def apply_globals(server: PgServer, script: str) -> tuple[list[str], list[str]]:
    """Run a `pg_dumpall --globals-only` script with psql on `server`, going on past errors.

    A role that already exists makes its CREATE ROLE fail while the ALTER ROLE and
    memberships after it still apply, which is what a restore onto a server with some of
    the roles wants. Returns (roles created, error lines).
    """
    with server.connect() as conn:
        before = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    try:
        output = procs.run(
            [
                tool("psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=0",
                f"--host={server.host}",
                f"--port={server.port}",
                f"--username={server.user}",
                f"--dbname={check_name(server.dbname)}",
                "-f",
                script,
            ],
            env=server.env(),
            secrets=server.secrets(),
        )
    except procs.ProcessError as exc:
        raise RestoreError(f"psql failed: {exc}") from None
    with server.connect() as conn:
        after = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
    errors = [line.strip() for line in output.splitlines() if "ERROR:" in line]
    return sorted(after - before), errors
