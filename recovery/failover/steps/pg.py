"""pg_ready, pg_promote, sql_check and sql_write: PostgreSQL through psycopg, bounded by the step deadline.

sql_check is read-only whatever its parameters say: exactly one statement that reads
(SELECT, WITH, VALUES, TABLE, SHOW), sent as one prepared statement (so no second
statement can end the transaction) in a session and transaction that are READ ONLY, and
only a number, a boolean or a row count ever reaches the step's output. A READ ONLY
transaction alone would not do: PostgreSQL still runs COPY ... TO PROGRAM in one, and a
superuser's plain SELECT can still write server files (lo_export(lo_from_bytea(...)))
and reload the configuration. So sql_check also refuses to run as a superuser or as a
member of the server-file and server-program roles: it connects as a role that can only
read (e.g. GRANT pg_monitor, and SELECT on the checked tables). Dropping privileges with
SET ROLE would not hold: set_config('role', ...) inside the SELECT takes them back.
Statements that change data are a separate kind, sql_write: a side effect (skipped in
test mode) that only a superuser may create or edit.
"""

from __future__ import annotations

import decimal
import re
import time

import psycopg

from recovery.engine import heartbeat

from .base import (
    Context,
    Kind,
    Param,
    StepResult,
    StepTimedOut,
    one_of,
    pg_host,
    port,
    positive,
)

CONN = {
    "host": Param((str,), check=pg_host),
    "port": Param((int,), 5432, port),
    "dbname": Param((str,), "postgres"),
    "user": Param((str,), "postgres"),
    "connect_timeout": Param((int,), 5, positive, help="seconds"),
}

# A server that answers with one of these is up, even if it refuses us.
_SERVER_ANSWERED = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "role ",
)
_NOT_ACCEPTING = ("starting up", "shutting down", "in recovery mode", "too many clients")


def where(params) -> str:
    return f"{params.get('host')}:{params.get('port', 5432)}/{params.get('dbname', 'postgres')}"


def connect(params, ctx: Context, *, read_only=False, **kwargs):
    left = ctx.remaining()
    if left <= 0:
        raise StepTimedOut("step timeout reached before connecting")
    timeout = max(1, int(min(params["connect_timeout"], left)))
    return psycopg.connect(
        host=params["host"],
        port=params["port"],
        dbname=params["dbname"],
        user=params["user"],
        password=ctx.secret or None,
        connect_timeout=timeout,
        autocommit=True,
        application_name="dr-portal-failover",
        # Every transaction of a read-only session starts READ ONLY, before our own SET.
        options="-c default_transaction_read_only=on" if read_only else None,
        **kwargs,
    )


def _statement_timeout(conn, ctx: Context):
    ms = max(100, int(ctx.remaining() * 1000))
    conn.execute(f"SET statement_timeout = {ms}")


class PgReady(Kind):
    name = "pg_ready"
    title = "PostgreSQL accepting connections"
    verification = True
    is_check = True
    secret_label = "password (optional)"
    endpoint_params = ("host", "port")
    default_timeout = 30.0
    params = {**CONN, "expect": Param((str,), "up", one_of("up", "down"))}

    def describe(self, params):
        want = "is down" if params.get("expect") == "down" else "accepts connections"
        return f"check that PostgreSQL at {where(params)} {want}"

    def run(self, params, ctx):
        try:
            with connect(params, ctx):
                up, detail = True, "accepting connections"
        except psycopg.OperationalError as exc:
            text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            lowered = str(exc).lower()
            if any(s in lowered for s in _NOT_ACCEPTING):
                up = False
            else:
                up = any(s in lowered for s in _SERVER_ANSWERED)
            detail = ("answering (" if up else "no answer (") + text + ")"
        line = f"{where(params)}: {detail}"
        return StepResult(up == (params["expect"] == "up"), line)


class PgPromote(Kind):
    name = "pg_promote"
    title = "Promote PostgreSQL standby"
    side_effects = True
    secret_label = "password (optional)"
    endpoint_params = ("host", "port")
    default_timeout = 120.0
    params = {
        **CONN,
        "heartbeat_dbname": Param(
            (str,),
            None,
            help="database holding the portal's heartbeat table (default: dbname); read "
            "after the promotion to measure the data lost",
        ),
    }

    def affects(self, params, check):
        # After a promotion, checks of the same server expect a primary (out of recovery,
        # writable); in test mode it is still a standby.
        return check.kind in ("pg_ready", "sql_check") and (
            check.params.get("host"),
            check.params.get("port"),
        ) == (params.get("host"), params.get("port"))

    def describe(self, params):
        return f"promote the standby at {where(params)} (SELECT pg_promote()) and wait until it leaves recovery"

    def run(self, params, ctx):
        with connect(params, ctx) as conn:
            _statement_timeout(conn, ctx)
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            if not in_recovery:
                return StepResult(
                    False,
                    f"{where(params)} is not a standby (pg_is_in_recovery() is "
                    "false): nothing to promote",
                )
            facts = standby_lag(conn)
            started = time.monotonic()
            # wait => false: we poll ourselves so the step deadline and cancel are honoured.
            conn.execute("SELECT pg_promote(wait => false)")
            ctx.log(f"pg_promote() sent to {where(params)}")
            while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                ctx.sleep(0.2)
            took = time.monotonic() - started
            lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
        lines = [f"{where(params)} promoted: out of recovery after {took:.1f}s, timeline LSN {lsn}"]
        lines.append(describe_lag(facts))
        beat, line = newest_heartbeat(params, ctx)
        facts["newest_heartbeat"] = beat
        lines.append(line)
        return StepResult(True, "\n".join(lines), facts=facts)


def standby_lag(conn) -> dict:
    """What the standby had not applied when it was promoted: WAL received but not replayed
    (bytes), and how old its newest replayed transaction was (seconds; None when nothing
    was replayed since it started)."""
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), "
        "extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
    ).fetchone()
    lag_bytes = max(0, int(row[0])) if row[0] is not None else None
    lag_s = max(0.0, float(row[1])) if row[1] is not None else None
    return {"lag_bytes": lag_bytes, "lag_seconds": lag_s}


def describe_lag(facts: dict) -> str:
    n, s = facts.get("lag_bytes"), facts.get("lag_seconds")
    shown_bytes = (
        f"{n} bytes of received WAL not yet replayed"
        if n is not None
        else "no WAL received by streaming"
    )
    shown_s = (
        f"newest replayed transaction {s:.1f}s old" if s is not None else "no transaction replayed"
    )
    return f"at promotion: {shown_bytes}, {shown_s}"


def newest_heartbeat(params, ctx):
    """(newest heartbeat on the new primary or None, a line for the output). Reading it is
    a measurement: a failure is reported, it does not fail the promotion that happened."""
    dbname = params.get("heartbeat_dbname") or params["dbname"]
    try:
        with connect({**params, "dbname": dbname}, ctx) as conn:
            beat = heartbeat.read_pg(conn)
    except (psycopg.Error, StepTimedOut) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"heartbeat not read from {dbname}: {first}"
    if beat is None:
        return None, f"no heartbeat table ({heartbeat.TABLE}) in {dbname}: data lost not measured"
    return beat, f"newest heartbeat on the new primary: {beat:%Y-%m-%d %H:%M:%S.%f} UTC"


_EXPECT = re.compile(r"^\s*(>=|<=|!=|==|=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


def _check_expect(value) -> str | None:
    if value.strip().lower() in ("true", "false", "rows", "no rows") or _EXPECT.match(value):
        return None
    return (
        "write the expectation as '> 0', '>= 10', '= 3', '!= 0', '< 5', 'true', 'false', "
        "'rows' or 'no rows'"
    )


def evaluate(expect: str, rows: list) -> tuple[bool, str]:
    """(passed, observed) for an expectation on the first column of the first row."""
    word = expect.strip().lower()
    if word in ("rows", "no rows"):
        observed = f"{len(rows)} row(s)"
        return (bool(rows) if word == "rows" else not rows), observed
    if not rows:
        return False, "no rows"
    value = rows[0][0]
    # Only numbers and booleans are shown: a check must not become a way to read data
    # (pg_read_file, a password hash) into the run's output.
    if isinstance(value, bool):
        shown = repr(value)
    elif isinstance(value, int | float | decimal.Decimal):
        shown = str(value)
    else:
        return False, "returned a non-number (not shown)"
    if word in ("true", "false"):
        return value is (word == "true"), shown
    op, number = _EXPECT.match(expect).groups()
    if isinstance(value, bool):
        return False, "a boolean, not a number"
    observed = float(value)
    target = float(number)
    passed = {
        ">": observed > target,
        ">=": observed >= target,
        "<": observed < target,
        "<=": observed <= target,
        "=": observed == target,
        "==": observed == target,
        "!=": observed != target,
    }[op]
    return passed, shown


_READS = ("select", "with", "values", "table", "show")
_WRITES = {"insert", "update", "delete", "merge", "copy"}  # WITH x AS (DELETE ...) SELECT ...
_WORD = re.compile(r"[A-Za-z_]+")
_TOKENS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|;|[^-/'\";]+|.", re.S)


def statements(sql: str) -> list[str]:
    """The statements in sql, split at semicolons outside quotes and comments, comments dropped."""
    parts, current = [], []
    for token in _TOKENS.findall(sql):
        if token == ";":
            parts.append("".join(current))
            current = []
        else:
            current.append(" " if token.startswith(("--", "/*")) else token)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def one_read_statement(sql) -> str | None:
    """Refuse anything but exactly one statement that starts as a read."""
    found = statements(sql)
    if len(found) != 1:
        return "give exactly one SQL statement" if found else "must not be empty"
    first = re.match(r"[(\s]*([A-Za-z]+)", found[0])
    words = {
        w.lower() for t in _TOKENS.findall(found[0]) if t[0] not in "'\"" for w in _WORD.findall(t)
    }
    if not first or first.group(1).lower() not in _READS or words & _WRITES:
        return (
            "a sql_check runs one read-only statement (SELECT, WITH, VALUES, TABLE or SHOW); "
            "statements that change data or run programs need a sql_write step, which only "
            "a superuser may create"
        )
    return None


def one_statement(sql) -> str | None:
    found = statements(sql)
    if len(found) != 1:
        return "give exactly one SQL statement" if found else "must not be empty"
    return None


def _refuse_read_write(value) -> str | None:
    if value is True:
        return None  # what every sql_check is; kept so older definitions still load
    return (
        "sql_check always runs in a read-only transaction; read_only: false is not possible. "
        "Use a sql_write step (superusers only; skipped in test mode) to change data"
    )


class SqlCheck(Kind):
    name = "sql_check"
    title = "SQL check"
    verification = True
    is_check = True
    secret_label = "password (optional)"
    endpoint_params = ("host", "port")
    default_timeout = 60.0
    params = {
        **CONN,
        "query": Param((str,), check=one_read_statement, help="one SELECT (read-only)"),
        "expect": Param((str,), check=_check_expect),
        "read_only": Param((bool,), None, _refuse_read_write, help="always true"),
    }

    def describe(self, params):
        return f"on {where(params)}: {params.get('query')} → expect {params.get('expect')}"

    def run(self, params, ctx):
        problem = one_read_statement(params["query"])  # also for definitions stored earlier
        if problem:
            return StepResult(False, f"refused: {problem}")
        with connect(params, ctx, read_only=True) as conn:
            _statement_timeout(conn, ctx)
            privileged = _privileged(conn)
            if privileged:
                return StepResult(
                    False,
                    f"refused: {where(params)}: role {params['user']!r} {privileged}. A "
                    "sql_check connects as a role that can only read (for example one "
                    "granted pg_monitor and SELECT on the checked tables).",
                )
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                # prepare=True: the extended protocol takes exactly one statement, so
                # "COMMIT; ..." cannot leave the read-only transaction.
                cur = conn.execute(params["query"], prepare=True)
                rows = cur.fetchmany(5) if cur.description else []
        passed, observed = evaluate(params["expect"], rows)
        return StepResult(
            passed,
            f"{where(params)}: observed {observed}, expected "
            f"{params['expect']} -> {'pass' if passed else 'FAIL'}",
        )


# Roles whose members can reach the server's files or run programs on it.
_SERVER_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")


def _privileged(conn) -> str:
    """Why the connected role may not run a check ("" when it may)."""
    superuser = conn.execute("SELECT current_setting('is_superuser')").fetchone()[0]
    if superuser == "on":
        return "is a superuser"
    held = conn.execute(
        "SELECT array_agg(r.rolname::text ORDER BY r.rolname) FROM pg_roles r "
        "WHERE r.rolname = ANY(%s) AND pg_has_role(current_user, r.oid, 'MEMBER')",
        [list(_SERVER_ROLES)],
    ).fetchone()[0]
    return f"is a member of {', '.join(held)}" if held else ""


class SqlWrite(Kind):
    """One statement that changes data: a side effect, superusers only, never run in test mode."""

    name = "sql_write"
    title = "SQL write (superusers only)"
    side_effects = True
    skipped_in_test = True  # test_params cannot point it at "a test database" that is live
    secret_label = "password (optional)"
    endpoint_params = ("host", "port")
    default_timeout = 300.0
    params = {
        **CONN,
        "statement": Param((str,), check=one_statement, help="one SQL statement"),
    }

    def describe(self, params):
        return f"on {where(params)}: {params.get('statement')}"

    def run(self, params, ctx):
        with connect(params, ctx) as conn:
            _statement_timeout(conn, ctx)
            with conn.transaction():
                cur = conn.execute(params["statement"], prepare=True)
                affected = cur.rowcount
        shown = f"{affected} row(s) affected" if affected >= 0 else "done"
        return StepResult(True, f"{where(params)}: {shown}")
