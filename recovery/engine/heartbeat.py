"""Heartbeats: the current time written into a small table inside the source database.

A restore test reads the newest heartbeat from the restored copy, so the data age
(RPO) is proven by the data that actually came back, not by a file's timestamp.
"""

import sqlite3
from datetime import UTC, datetime

TABLE = "dr_portal_heartbeat"

_PG_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id integer PRIMARY KEY, beat_at timestamptz NOT NULL)"
)
_PG_UPSERT = (
    f"INSERT INTO {TABLE} (id, beat_at) VALUES (1, %s) "
    "ON CONFLICT (id) DO UPDATE SET beat_at = EXCLUDED.beat_at"
)
_SQLITE_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, beat_at TEXT NOT NULL)"
)
_SQLITE_UPSERT = (
    f"INSERT INTO {TABLE} (id, beat_at) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at"
)


def _now() -> datetime:
    return datetime.now(UTC)


def write_pg(server, at: datetime | None = None) -> datetime:
    """Write the heartbeat into a PostgreSQL database (`server` is a PgServer)."""
    at = at or _now()
    with server.connect() as conn:
        conn.execute(_PG_CREATE)
        conn.execute(_PG_UPSERT, (at,))
    return at


def read_pg(conn) -> datetime | None:
    """The newest heartbeat in a psycopg connection's database, or None without the table."""
    exists = conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0]
    if exists is None:
        return None
    value = conn.execute(f"SELECT max(beat_at) FROM {TABLE}").fetchone()[0]
    return value.astimezone(UTC) if value else None


def write_sqlite(path: str, at: datetime | None = None) -> datetime:
    at = at or _now()
    conn = sqlite3.connect(path, timeout=20)
    try:
        with conn:
            conn.execute(_SQLITE_CREATE)
            conn.execute(_SQLITE_UPSERT, (at.astimezone(UTC).isoformat(),))
    finally:
        conn.close()
    return at


def read_sqlite(conn) -> datetime | None:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    if row is None:
        return None
    value = conn.execute(f"SELECT max(beat_at) FROM {TABLE}").fetchone()[0]
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
