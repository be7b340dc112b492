"""Real data for the end-to-end, fault and load suites: SQLite files, sparse trees,
PostgreSQL databases; the rows that point at them come from tests/factories.py."""

import sqlite3
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

from backups.services import backup_now
from tests.factories import COUNT_WORKFLOWS, DestinationFactory, SourceFactory
from tests.support.s3 import ACCESS_KEY, SECRET_KEY

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def big_sqlite(path: Path, mb: float = 4, rows_per_mb: int = 1000) -> Path:
    """A SQLite file of about `mb` megabytes of hex text (compresses about 2:1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"wf-{i}",) for i in range(20)])
    conn.execute("CREATE TABLE executions (id INTEGER PRIMARY KEY, output TEXT)")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " INSERT INTO executions (output) SELECT hex(randomblob(500)) FROM n",
        (int(mb * rows_per_mb),),
    )
    conn.commit()
    conn.close()
    return path


def sparse_tree(path: Path, gigabytes: float = 50) -> Path:
    """A directory holding one huge sparse file: a large files backup that costs no disk,
    streamed at the speed of tar and compression (about 100 MB/s here), so it runs for minutes."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README").write_text("a directory with one large disk image\n")
    with open(path / "disk.img", "wb") as fh:
        fh.truncate(int(gigabytes * 1024**3))
    return path


def files_source(name: str, path: Path, **fields):
    return SourceFactory(name=name, files=True, path=str(path), **fields)


def small_sqlite(path: Path, rows: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"wf-{i}",) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def pg_admin():
    return psycopg.connect(PG_ADMIN, autocommit=True)


def drop_pg_database(name: str):
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def pg_database(prefix: str = "dr_e2e_", mb: float = 0, owner_password: str = ""):
    """A fresh PostgreSQL database (unique name), optionally holding `mb` of table data;
    always dropped. With owner_password, a login role owning it is created (and dropped)."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    role = ""
    with pg_admin() as conn:
        if owner_password:
            role = f"{name}_owner"
            conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{owner_password}'")
        conn.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{role}"' if role else ""))
    try:
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}", autocommit=True) as c:
            c.execute("CREATE TABLE workflows (id serial PRIMARY KEY, name text NOT NULL)")
            c.execute(
                "INSERT INTO workflows (name) SELECT 'wf-' || g FROM generate_series(1, 20) g"
            )
            c.execute("CREATE TABLE executions (id serial PRIMARY KEY, output text)")
            if mb:
                c.execute(
                    "INSERT INTO executions (output) SELECT md5(g::text) || md5((g * 7)::text)"
                    " || md5((g * 13)::text) FROM generate_series(1, %s) g",
                    (int(mb * 10000),),
                )
            if role:
                c.execute(f'ALTER TABLE workflows OWNER TO "{role}"')
                c.execute(f'ALTER TABLE executions OWNER TO "{role}"')
        yield name if not role else (name, role)
    finally:
        drop_pg_database(name)
        if role:
            with pg_admin() as conn:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def sqlite_source(name: str, path: Path, **fields):
    fields.setdefault("data_class", "critical")
    fields.setdefault("checks", COUNT_WORKFLOWS)
    return SourceFactory(name=name, sqlite=True, path=str(path), **fields)


def pg_source(name: str, database: str, user: str = "postgres", password: str = "", **fields):
    fields.setdefault("data_class", "critical")
    fields.setdefault("checks", COUNT_WORKFLOWS)
    return SourceFactory(
        name=name, postgresql=True, database=database, user=user, password=password, **fields
    )


def s3_destination(name: str, s3, bucket: str, prefix: str = "dr/"):
    """A destination on the moto server `s3` (tests/support/s3.py), with its test keys."""
    return DestinationFactory(
        name=name,
        s3=True,
        bucket=bucket,
        prefix=prefix,
        endpoint_url=s3.endpoint,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )


def files_under(path: Path) -> list[str]:
    """Every file (hidden temp files included) below path, relative."""
    path = Path(path)
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def backup(source):
    """Back up `source` through its job (`source.job`) with the backups app's own code path;
    the run must succeed."""
    run = backup_now(source.job)
    assert run.status == "succeeded", run.error
    return run
