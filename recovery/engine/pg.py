"""PostgreSQL: scratch databases on a configured server and `pg_restore` into them."""

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

from recovery.engine import procs

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
    from dr_portal.lib.redact import redact

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text, secrets=[s for s in secrets if s])


def check_name(name: str) -> str:
    if not _NAME_OK.match(name or ""):
        raise RestoreError(f"{name!r} is not a usable database name")
    return name


def new_scratch_name(prefix: str = SCRATCH_PREFIX) -> str:
    return f"{prefix}{int(time.time())}_{_secrets.token_hex(4)}"


def create_database(server: PgServer, name: str):
    with server.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(check_name(name))))


def drop_database(server: PgServer, name: str):
    """Drop even while something is still connected (PostgreSQL 13+ FORCE)."""
    with server.connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


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


def sweep_scratch(server: PgServer, older_than_s: float = 86400) -> list[str]:
    """Drop scratch databases a killed worker left behind; return their names."""
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
            drop_database(server, name)
            dropped.append(name)
    return dropped


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise RestoreError(f"{name} is not installed or not on PATH")
    return found


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
        return procs.run(
            args,
            env=target.env(),
            timeout=timeout,
            secrets=target.secrets(),
            cancelled=cancelled,
            feed=archive if streamed else None,
        )
    except procs.ProcessError as exc:
        raise RestoreError(f"pg_restore failed: {exc}") from None


def rename_database(server: PgServer, old: str, new: str):
    """Rename a database, closing other sessions on it first."""
    with server.connect() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (old,),
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(check_name(new))
            )
        )
