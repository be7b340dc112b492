"""Parallel dumps (pg_dump -Fd -j N) through the engine: one tar artifact, restorable with
the stock tools, staging removed on success, failure and cancel."""

import io
import subprocess
import tarfile
import threading
import time

import pytest

from backups.engine import BackupOptions, SourceSpec, pg_parallel, run_backup, unpack_artifact

from .conftest import PG_ENV, local_spec, psql
from .test_source_round_trips import ROWS_CHECKSUM, fill_pg

pytestmark = pytest.mark.postgres


def _spec(db: str, **extra) -> SourceSpec:
    config = {"host": "127.0.0.1", "port": 5432, "database": db, "user": "postgres"}
    return SourceSpec("postgresql", {**config, "parallel": 2, **extra})


def _backup(spec, tmp_path, keys, cancel=None):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return run_backup(
        spec,
        [local_spec(tmp_path / "dest")],
        BackupOptions("pg/run1", master_keys=keys, scratch_dir=str(scratch)),
        cancel=cancel,
    )


def _fill(db: str) -> None:
    fill_pg(db, rows=3000)
    psql(
        "CREATE TABLE notes (id int PRIMARY KEY, body text);"
        "INSERT INTO notes SELECT g, repeat('n', g % 50) FROM generate_series(1, 400) g;"
        "CREATE TABLE empty_one (id int);",
        db,
    )


def test_parallel_dump_is_one_tar_restorable_with_pg_restore_j(pg_databases, keys, tmp_path):
    source_db = pg_databases("src")
    _fill(source_db)
    result = _backup(_spec(source_db), tmp_path, keys)
    assert result.status == "succeeded", result.error
    assert result.manifest["dump_format"] == "directory"
    assert result.manifest["parallel"] == 2
    assert "pg_restore -j" in result.manifest["restore_as"]
    assert list((tmp_path / "scratch").iterdir()) == []  # staging removed

    plain = io.BytesIO()
    with open(result.copies[0].location, "rb") as reader:
        info = unpack_artifact(reader, plain, keys, result.sha256)
    assert info["bytes_out"] == result.bytes_read
    plain.seek(0)
    with tarfile.open(fileobj=plain, mode="r:") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "toc.dat"
        assert names[1:] == sorted(names[1:]) and len(names) >= 5  # 4 tables' data
        assert all(m.isreg() and m.mode == 0o600 and m.mtime == 0 for m in members)
        tar.extractall(tmp_path / "dump", filter="data")
    target_db = pg_databases("dst")
    subprocess.run(
        ["pg_restore", "--exit-on-error", "--no-owner", "-j", "2", "-d", target_db]
        + [str(tmp_path / "dump")],
        check=True,
        env=PG_ENV,
        capture_output=True,
    )
    for table in ("workflows", "executions", "notes"):
        query = ROWS_CHECKSUM.format(table=table)
        assert psql(query, target_db) == psql(query, source_db)


def test_failure_mid_dump_keeps_no_copy_and_no_staging(pg_databases, keys, tmp_path):
    """A table the dump role may lock but not read through row security fails pg_dump in
    a worker's COPY, after the schema and other tables were written to staging."""
    source_db = pg_databases("src")
    _fill(source_db)
    role = f"dr_dumper_{source_db[-10:]}"
    psql(f"CREATE ROLE {role} LOGIN", source_db)
    try:
        psql(
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
            "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;",
            source_db,
        )
        result = _backup(_spec(source_db, user=role), tmp_path, keys)
    finally:
        psql(f"DROP OWNED BY {role}", source_db)
        psql(f"DROP ROLE {role}")
    assert result.status == "failed"
    assert "pg_dump exited with code" in result.error and "row-level security" in result.error
    assert not result.copies[0].ok
    assert list((tmp_path / "scratch").iterdir()) == []
    assert not any(p.is_file() for p in (tmp_path / "dest").rglob("*"))


@pytest.mark.slow
def test_cancel_while_pg_dump_waits_kills_it_and_removes_staging(pg_databases, keys, tmp_path):
    source_db = pg_databases("src")
    _fill(source_db)
    cancel = threading.Event()
    blocker = subprocess.Popen(  # holds an exclusive lock: pg_dump waits for it
        ["psql", "-d", source_db, "-c", "BEGIN; LOCK TABLE notes; SELECT pg_sleep(30);"],
        env=PG_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        threading.Timer(1.5, cancel.set).start()
        started = time.monotonic()
        result = _backup(_spec(source_db), tmp_path, keys, cancel=cancel)
        assert time.monotonic() - started < 10
    finally:
        blocker.kill()
        blocker.wait()
    assert result.cancelled and result.status == "failed"
    assert list((tmp_path / "scratch").iterdir()) == []
    dumping = psql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'dr-portal backup'"
        f" AND datname = '{source_db}'"
    )
    assert dumping == "0"


def test_too_little_free_space_is_refused_before_dumping(pg_databases, keys, tmp_path, monkeypatch):
    source_db = pg_databases("src")
    _fill(source_db)
    monkeypatch.setattr(pg_parallel, "SPACE_MARGIN", 1 << 60)  # more than any disk has free
    result = _backup(_spec(source_db), tmp_path, keys)
    assert result.status == "failed"
    assert "not enough free space for a parallel dump" in result.error
    assert "the tables take about" in result.error
    assert list((tmp_path / "scratch").iterdir()) == []


def test_parallel_out_of_range_is_refused(pg_databases, keys, tmp_path):
    result = _backup(_spec("whatever", parallel=17), tmp_path, keys)
    assert result.status == "failed"
    assert "parallel must be a whole number from 1 to 16" in result.error
