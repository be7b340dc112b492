"""pg_ready, pg_promote and sql_check: PostgreSQL through psycopg, each bounded by the step deadline."""

from __future__ import annotations

import re
import time

from .base import Context, Kind, Param, StepResult, StepTimedOut, non_empty, one_of, port, positive

CONN = {
    "host": Param((str,), check=non_empty),
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


def connect(params, ctx: Context, **kwargs):
    import psycopg

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
        **kwargs,
    )


def _statement_timeout(conn, ctx: Context):
    ms = max(100, int(ctx.remaining() * 1000))
    conn.execute(f"SET statement_timeout = {ms}")


class PgReady(Kind):
    name = "pg_ready"
    title = "PostgreSQL accepting connections"
    verification = True
    secret_label = "password (optional)"
    default_timeout = 30.0
    params = {**CONN, "expect": Param((str,), "up", one_of("up", "down"))}

    def describe(self, params):
        want = "is down" if params.get("expect") == "down" else "accepts connections"
        return f"check that PostgreSQL at {where(params)} {want}"

    def run(self, params, ctx):
        import psycopg

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
    default_timeout = 120.0
    params = dict(CONN)

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
            started = time.monotonic()
            # wait => false: we poll ourselves so the step deadline and cancel are honoured.
            conn.execute("SELECT pg_promote(wait => false)")
            ctx.log(f"pg_promote() sent to {where(params)}")
            while True:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    took = time.monotonic() - started
                    lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
                    return StepResult(
                        True,
                        f"{where(params)} promoted: out of recovery after "
                        f"{took:.1f}s, timeline LSN {lsn}",
                    )
                ctx.sleep(0.2)


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
    if word in ("true", "false"):
        return value is (word == "true"), repr(value)
    op, number = _EXPECT.match(expect).groups()
    try:
        observed = float(value)
    except (TypeError, ValueError):
        return False, f"{value!r} is not a number"
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
    return passed, repr(value)


class SqlCheck(Kind):
    name = "sql_check"
    title = "SQL check"
    verification = True
    secret_label = "password (optional)"
    default_timeout = 60.0
    params = {
        **CONN,
        "query": Param((str,), check=non_empty),
        "expect": Param((str,), check=_check_expect),
        "read_only": Param((bool,), True, help="run in a read-only transaction"),
    }

    def describe(self, params):
        return f"on {where(params)}: {params.get('query')} → expect {params.get('expect')}"

    def run(self, params, ctx):
        with connect(params, ctx) as conn:
            _statement_timeout(conn, ctx)
            with conn.transaction():
                if params["read_only"]:
                    conn.execute("SET TRANSACTION READ ONLY")
                cur = conn.execute(params["query"])
                rows = cur.fetchmany(5) if cur.description else []
        passed, observed = evaluate(params["expect"], rows)
        return StepResult(
            passed,
            f"{where(params)}: observed {observed}, expected "
            f"{params['expect']} -> {'pass' if passed else 'FAIL'}",
        )
