"""Fixtures: real sources backed up through the backups app's own code path."""

import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.factories import BackupJobFactory, SourceFactory
from tests.marks import needs
from tests.recovery.pgutil import fill_toolhub, temp_database

PG_CHECKS = [
    {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"},
    {"name": "executions", "sql": "SELECT COUNT(*) FROM executions", "expect": ">= 1"},
    {
        "name": "executions canary",
        "sql": "SELECT COUNT(*) FROM executions",
        "expect": "not below 50% of previous",
    },
]


@pytest.fixture(autouse=True)
def scratch_prefix(request):
    """A scratch database prefix of this test's own (see pgutil.scratch_databases)."""
    from tests.recovery import pgutil

    prefix = f"dr_scratch_t{uuid.uuid4().hex[:8]}_"
    pgutil.CURRENT_PREFIX[0] = prefix
    if "settings" in request.fixturenames or "db" in request.fixturenames:
        request.getfixturevalue("settings").DR_SCRATCH_PREFIX = prefix
    yield prefix
    pgutil.CURRENT_PREFIX[0] = "dr_scratch_"


@pytest.fixture
@needs("postgres")
def pg_db():
    """A real PostgreSQL database holding the tool-hub tables; dropped afterwards."""
    with temp_database() as db:
        fill_toolhub(db)
        yield db


@pytest.fixture
def pg_source(db, pg_db, local_destination):
    source = SourceFactory(
        postgresql=True,
        system__name="tool-hub",
        name="toolhub-pg",
        data_class="critical",
        host=pg_db.host,
        port=pg_db.port,
        database=pg_db.dbname,
        user=pg_db.user,
        checks=PG_CHECKS,
    )
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    source.db = pg_db
    return source


def make_sqlite_db(path: Path, rows=20) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"w{i}",) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def sqlite_source(db, tmp_path, local_destination):
    path = make_sqlite_db(tmp_path / "tool_hub.db")
    source = SourceFactory(
        sqlite=True,
        system__name="tool-hub",
        name="toolhub-db",
        data_class="critical",
        path=str(path),
        checks=[{"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "= 20"}],
    )
    source.job = BackupJobFactory(source=source, destinations=[local_destination])
    return source


def run_test(source, **kwargs):
    from recovery import restore_tests

    test = restore_tests.start_restore_test(source, **kwargs)
    return restore_tests.execute_restore_test(test)
