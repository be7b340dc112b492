"""pg_ready, sql_check and pg_promote against the real PostgreSQL server on 127.0.0.1:5432."""

import uuid

import psycopg
import pytest

from recovery.failover.steps import StepDefinitionError, parse_steps, run_steps
from recovery.failover.steps.pg import evaluate

pytestmark = pytest.mark.postgres
CONN = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
READER = {**CONN, "user": "dr_check"}  # sql_check refuses a superuser


@pytest.fixture
def database():
    name = f"dr_failover_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**CONN, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(**CONN, dbname=name, autocommit=True) as conn:
            conn.execute("CREATE TABLE workflows (id int)")
            conn.execute("INSERT INTO workflows SELECT generate_series(1, 7)")
            conn.execute(
                "DO $$ BEGIN CREATE ROLE dr_check LOGIN; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            )
            conn.execute("GRANT SELECT ON workflows TO dr_check")
        yield name
    finally:
        with psycopg.connect(**CONN, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one(defn):
    result = run_steps(parse_steps([defn], allow_command=False))
    return result.outcomes[0]


@pytest.mark.parametrize(
    ("expect", "passes"),
    [
        ("> 0", True),
        (">= 7", True),
        ("= 7", True),
        ("!= 7", False),
        ("< 7", False),
        ("rows", True),
    ],
)
def test_sql_check_compares_the_first_value(database, expect, passes):
    step = one(
        {
            "name": "count",
            "kind": "sql_check",
            "params": {
                **READER,
                "dbname": database,
                "query": "SELECT count(*) FROM workflows",
                "expect": expect,
            },
        }
    )
    assert (step.status == "succeeded") is passes, step.output
    assert ("observed 1 row(s)" if expect == "rows" else "observed 7") in step.output


def test_sql_check_refuses_a_statement_that_writes():
    with pytest.raises(StepDefinitionError, match="need a sql_write step"):
        parse_steps(
            [
                {
                    "name": "sneaky write",
                    "kind": "sql_check",
                    "params": {
                        **READER,
                        "query": "DELETE FROM workflows RETURNING 1",
                        "expect": "rows",
                    },
                }
            ],
            allow_command=False,
        )


def test_sql_check_runs_in_a_read_only_transaction(database):
    step = one(
        {
            "name": "sneaky lock",
            "kind": "sql_check",
            "params": {
                **READER,
                "dbname": database,
                "query": "SELECT 1 FROM workflows FOR SHARE",
                "expect": "rows",
            },
        }
    )
    assert step.status == "failed" and "read-only transaction" in step.output


def test_sql_check_query_is_cut_at_the_step_timeout(database):
    step = one(
        {
            "name": "slow",
            "kind": "sql_check",
            "timeout": 1,
            "params": {
                **READER,
                "dbname": database,
                "query": "SELECT pg_sleep(10)",
                "expect": "rows",
            },
        }
    )
    assert step.status in ("failed", "timed_out")
    assert "statement timeout" in step.output


def test_sql_check_refuses_to_run_as_a_superuser(database):
    step = one(
        {
            "name": "as postgres",
            "kind": "sql_check",
            "params": {**CONN, "dbname": database, "query": "SELECT 1", "expect": "= 1"},
        }
    )
    assert step.status == "failed"
    assert "role 'postgres' is a superuser" in step.output


def test_pg_ready_up_and_down():
    assert one({"name": "up", "kind": "pg_ready", "params": CONN}).status == "succeeded"
    down = one(
        {
            "name": "down",
            "kind": "pg_ready",
            "params": {**CONN, "port": 1, "expect": "down", "connect_timeout": 2},
        }
    )
    assert down.status == "succeeded" and "no answer" in down.output
    wrong = one({"name": "expected down", "kind": "pg_ready", "params": {**CONN, "expect": "down"}})
    assert wrong.status == "failed"


def test_pg_promote_refuses_a_server_that_is_not_a_standby():
    step = one({"name": "promote", "kind": "pg_promote", "params": CONN})
    assert step.status == "failed"
    assert "is not a standby" in step.output


def test_expectation_evaluation():
    assert evaluate("true", [(True,)]) == (True, "True")
    assert evaluate("false", [(True,)])[0] is False
    assert evaluate("no rows", []) == (True, "0 row(s)")
    assert evaluate("> 0", []) == (False, "no rows")
    assert evaluate("> 0", [("abc",)]) == (False, "returned a non-number (not shown)")
