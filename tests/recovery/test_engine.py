"""The restore engine on its own: real PostgreSQL, SQLite files, tars; no Django models."""

import os
import socket
import sqlite3
import tarfile
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from recovery.engine import heartbeat
from recovery.engine.checks import ExpectationError, Outcome, evaluate, parse_expectation
from recovery.engine.pg import PgServer, RestoreError
from recovery.engine.verify import Phases, verify_files, verify_postgres, verify_sqlite
from tests.recovery.pgutil import (
    SERVER,
    fill_toolhub,
    pg_dump,
    scratch_databases,
    table_fingerprint,
    temp_database,
)

CHECKS = [
    {"name": "workflows", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 0"},
    {"name": "executions", "sql": "SELECT COUNT(*) FROM executions", "expect": ">= 500"},
]


@pytest.mark.parametrize(
    "expect,observed,previous,outcome",
    [
        ("> 0", 5, None, Outcome.PASSED),
        ("> 0", 0, None, Outcome.FAILED),
        (">= 10", 10, None, Outcome.PASSED),
        ("= 3", Decimal("3"), None, Outcome.PASSED),
        ("= 3", "3", None, Outcome.FAILED),  # text, even numeric-looking, is refused
        ("= 1", True, None, Outcome.PASSED),
        ("= 3", 4, None, Outcome.FAILED),
        ("> 0", None, None, Outcome.COULD_NOT_VERIFY),
        ("> 0", "abc", None, Outcome.FAILED),
        ("not below 90% of previous", 95, 100, Outcome.PASSED),
        ("not below 90% of previous", 10, 100, Outcome.FAILED),
        ("not below 90% of previous", 10, None, Outcome.PASSED),
        ("bogus", 1, None, Outcome.COULD_NOT_VERIFY),
    ],
)
def test_expectations_are_judged(expect, observed, previous, outcome):
    assert evaluate(expect, observed, previous)[0] == outcome


def test_unparseable_expectation_says_how_to_write_one():
    with pytest.raises(ExpectationError, match="not below 90% of previous"):
        parse_expectation("more than zero")


def test_canary_names_the_loss():
    outcome, detail = evaluate("not below 50% of previous", 100, 1000)
    assert outcome == Outcome.FAILED and "data loss" in detail and "90%" in detail


@pytest.mark.postgres
def test_postgres_archive_restores_into_scratch_and_scratch_is_dropped(tmp_path, scratch_prefix):
    with temp_database() as source:
        fill_toolhub(source)
        heartbeat.write_pg(source, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        archive = str(tmp_path / "dump.pgc")
        pg_dump(source, archive)
        phases = Phases()
        result = verify_postgres(
            archive, SERVER, CHECKS, None, phases, jobs=2, scratch_prefix=scratch_prefix
        )
    assert [c.outcome for c in result.checks] == ["passed", "passed"]
    assert result.checks[1].observed == "500"
    assert result.heartbeat_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert [p["name"] for p in phases.items] == ["create scratch", "restore", "checks", "cleanup"]
    assert all(p["ok"] for p in phases.items)
    assert scratch_databases() == []


@pytest.mark.postgres
def test_failing_check_and_erroring_check_are_reported_not_raised(tmp_path, scratch_prefix):
    with temp_database() as source:
        fill_toolhub(source)
        archive = str(tmp_path / "dump.pgc")
        pg_dump(source, archive)
    checks = [
        {"name": "too many", "sql": "SELECT COUNT(*) FROM workflows", "expect": "> 1000"},
        {"name": "missing table", "sql": "SELECT COUNT(*) FROM nope", "expect": "> 0"},
        {"name": "still ok", "sql": "SELECT 1", "expect": "= 1"},
    ]
    result = verify_postgres(archive, SERVER, checks, None, Phases(), scratch_prefix=scratch_prefix)
    assert [c.outcome for c in result.checks] == ["failed", "could_not_verify", "passed"]
    assert "nope" in result.checks[1].detail
    assert scratch_databases() == []


@pytest.mark.postgres
def test_garbage_archive_fails_and_leaves_no_scratch(tmp_path, scratch_prefix):
    archive = tmp_path / "dump.pgc"
    archive.write_bytes(b"PGDMP" + os.urandom(2000))
    phases = Phases()
    with pytest.raises(RestoreError, match="pg_restore failed"):
        verify_postgres(str(archive), SERVER, CHECKS, None, phases, scratch_prefix=scratch_prefix)
    assert scratch_databases() == []
    assert phases.items[-1]["name"] == "cleanup" and phases.items[-1]["ok"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scratch_server_down_names_the_server(tmp_path):
    down = PgServer(port=closed_port())
    with pytest.raises(
        RestoreError, match=f"cannot connect to PostgreSQL at 127.0.0.1:{down.port}"
    ):
        verify_postgres(str(tmp_path / "x"), down, CHECKS, None, Phases())


def test_sqlite_copy_is_integrity_checked_and_heartbeat_read(tmp_path):
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE workflows (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO workflows (name) VALUES (?)", [(f"w{i}",) for i in range(7)])
    conn.commit()
    conn.close()
    heartbeat.write_sqlite(str(db), datetime(2026, 5, 1, tzinfo=UTC))
    checks = [{"name": "wf", "sql": "SELECT COUNT(*) FROM workflows", "expect": "= 7"}]
    result = verify_sqlite(str(db), checks, None, Phases())
    assert result.checks[0].passed
    assert result.heartbeat_at == datetime(2026, 5, 1, tzinfo=UTC)


def test_corrupt_sqlite_is_refused(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(RestoreError):
        verify_sqlite(str(db), [], None, Phases())


def test_files_restore_compares_listing_and_removes_its_directory(tmp_path):
    src = tmp_path / "config"
    (src / "sub dir").mkdir(parents=True)
    (src / "a.env").write_text("A=1\n")
    (src / "sub dir" / "ünï cødé.txt").write_text("x" * 1000)
    tar_path = tmp_path / "files.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(src, arcname=".")
    work = tmp_path / "work"
    work.mkdir()
    result = verify_files(str(tar_path), Phases(), expected_count=2, tmp_dir=str(work))
    assert "2 files" in result.integrity
    assert list(work.iterdir()) == []
    with pytest.raises(RestoreError, match="manifest lists 3 files"):
        verify_files(str(tar_path), Phases(), expected_count=3, tmp_dir=str(work))
    assert list(work.iterdir()) == []


@pytest.mark.postgres
def test_restored_rows_equal_source(tmp_path):
    from recovery.engine.pg import pg_restore

    with temp_database() as source:
        fill_toolhub(source)
        archive = str(tmp_path / "dump.pgc")
        pg_dump(source, archive)
        with temp_database() as copy:
            pg_restore(archive, copy, jobs=2)
            for table in ("workflows", "executions"):
                assert table_fingerprint(copy, table) == table_fingerprint(source, table)
