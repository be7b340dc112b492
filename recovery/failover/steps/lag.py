"""Replication lag of a standby: how far it is behind its primary, in bytes and seconds.

Bytes: the primary's current WAL position (pg_current_wal_lsn(), what pg_stat_replication
compares its replay_lsn with) minus the standby's replayed position. Without an answer from
the primary (it is down, or the runbook names none), the bytes the standby received but has
not replayed. Seconds: 0 when the standby replayed everything it received, else the age of
its newest replayed transaction (pg_last_xact_replay_timestamp()).

Plain Python: the portal hands in the connection parameters of the runbook's steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from .base import Context
from .pg import connect, where

# pg_monitor may read all of these; the standby's session is read-only.
_STANDBY_SQL = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)


@dataclass
class Lag:
    standby: str  # host:port/dbname
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    from_primary: bool = False  # bytes measured against the primary's current position
    error: str = ""


def lsn(text: str) -> int:
    """'16/B374D848' -> a byte position."""
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def measure(standby: dict, primary: dict | None = None, timeout: float = 10.0) -> Lag:
    """Measure one standby. `standby`/`primary` are pg step parameters with "secret" added."""
    result = Lag(where(standby))
    try:
        ctx = Context(deadline=time.monotonic() + timeout, secret=standby.get("secret", ""))
        with connect(standby, ctx, read_only=True) as conn:
            conn.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            in_recovery, replayed, pending, age = conn.execute(_STANDBY_SQL).fetchone()
    except psycopg.Error as exc:
        result.error = f"standby {result.standby}: {_first_line(exc)}"
        return result
    if not in_recovery:
        result.error = (
            f"{result.standby} is not a standby (not in recovery): nothing replicates to it"
        )
        return result
    result.lag_seconds = max(0.0, float(age)) if age is not None else None
    result.lag_bytes = max(0, int(pending)) if pending is not None else None
    if primary and replayed:
        try:
            ctx = Context(deadline=time.monotonic() + timeout, secret=primary.get("secret", ""))
            with connect(primary, ctx, read_only=True) as conn:
                current = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            result.lag_bytes = max(0, lsn(current) - lsn(replayed))
            result.from_primary = True
        except psycopg.Error:
            pass  # a primary that is down: the standby's own figure stands
    return result
