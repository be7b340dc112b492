"""'Test connection' for a source: can the backup read it? Quick and read-only.

PostgreSQL: connect as the configured user (5 s connect timeout, 5 s statement timeout),
read the server version and whether it is a standby, and find pg_dump. SQLite: open the
file read-only and read its schema. Files: the directory exists and can be listed.
Raises SourceError with a sentence for the person; never includes the password.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import psycopg

from .errors import SourceError
from .sources import Protected
from .specs import SourceSpec

CONNECT_TIMEOUT = 5


def probe_source(spec: SourceSpec) -> str:
    """What was reached, in one line; SourceError saying what failed."""
    if spec.kind == "postgresql":
        return _postgresql(spec.config, spec.password)
    if spec.kind == "sqlite":
        return _sqlite(spec.config)
    if spec.kind == "files":
        return _files(spec.config)
    raise SourceError(f"unknown source kind {spec.kind!r}")


def _postgresql(config: dict, password: str) -> str:
    where = f"{config.get('host')}:{config.get('port') or 5432}/{config.get('database')}"
    try:
        with psycopg.connect(
            host=config.get("host") or "127.0.0.1",
            port=config.get("port") or 5432,
            dbname=config["database"],
            user=config.get("user") or "postgres",
            password=password or None,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="dr-portal connection test",
            autocommit=True,
        ) as conn:
            conn.execute("SET statement_timeout = '5s'")
            version, standby = conn.execute(
                "SELECT current_setting('server_version'), pg_is_in_recovery()"
            ).fetchone()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SourceError(f"could not connect to {where}: {first}") from None
    role = "a standby" if standby else "a primary"
    dump = shutil.which("pg_dump")
    tool = "pg_dump found" if dump else "pg_dump NOT found on this server's PATH"
    return f"connected to {where} as {config.get('user')}: PostgreSQL {version}, {role}; {tool}"


def _sqlite(config: dict) -> str:
    path = Path(config["path"])
    Protected(config.get("protected")).refuse_path(path)
    if not path.is_file():
        raise SourceError(f"no file at {path}")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise SourceError(f"{path} is not a readable SQLite database: {exc}") from None
    return f"opened {path} read-only: SQLite, {tables} tables, {path.stat().st_size} bytes"


def _files(config: dict) -> str:
    path = Path(config["path"])
    Protected(config.get("protected")).refuse_path(path)
    if not path.is_dir():
        raise SourceError(f"no directory at {path}")
    if not os.access(path, os.R_OK | os.X_OK):
        raise SourceError(f"{path} cannot be listed by the portal's user")
    entries = sum(1 for _ in path.iterdir())
    return f"{path} can be read: {entries} entries at its top level"
