"""Helpers for tests that need real PostgreSQL databases (created and always dropped)."""

import subprocess
import uuid
from contextlib import contextmanager

from recovery.engine.pg import PgServer, create_database, drop_database

SERVER = PgServer()  # 127.0.0.1:5432, user postgres, trust auth


@contextmanager
def temp_database(prefix="dr_test_"):
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    create_database(SERVER, name)
    try:
        yield SERVER.with_db(name)
    finally:
        drop_database(SERVER, name)


def fill_toolhub(db: PgServer, workflows=50, executions=500):
    with db.connect() as conn:
        conn.execute("CREATE TABLE workflows (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute(
            "CREATE TABLE executions (id serial PRIMARY KEY, workflow_id int REFERENCES workflows,"
            " status text, output text)"
        )
        conn.execute(
            "INSERT INTO workflows (name) SELECT 'wf-' || g FROM generate_series(1, %s) g",
            (workflows,),
        )
        conn.execute(
            "INSERT INTO executions (workflow_id, status, output) SELECT 1 + g %% %s, 'ok',"
            " md5(g::text) FROM generate_series(1, %s) g",
            (workflows, executions),
        )


def table_fingerprint(db: PgServer, table: str) -> tuple[int, str]:
    with db.connect() as conn:
        row = conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
            f" FROM {table} t"
        ).fetchone()
    return row[0], row[1]


# Each test uses its own scratch prefix (conftest sets it), so scratch databases that other
# runs on the same server create meanwhile are never mistaken for this test's leftovers.
CURRENT_PREFIX = ["dr_scratch_"]


def scratch_databases(prefix: str | None = None) -> list[str]:
    like = (prefix or CURRENT_PREFIX[0]).replace("_", r"\_") + "%"
    with SERVER.connect() as conn:
        return [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))
        ]


def pg_dump(db: PgServer, path: str):
    subprocess.run(
        ["pg_dump", "-Fc", "-h", db.host, "-p", str(db.port), "-U", db.user, "-f", path, db.dbname],
        check=True,
    )
