"""Parallel dumps (pg_dump -Fd -j N) through the engine: one tar artifact, restorable with
the stock tools, staging removed on success, failure and cancel."""

import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from backups.engine import BackupOptions, SourceSpec, pg_parallel, run_backup, unpack_artifact
from tests.environment import TEST_MASTER_KEY

from .conftest import PG_ENV, local_spec, psql
from .test_source_round_trips import ROWS_CHECKSUM, fill_pg

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


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


def _documented_commands(doc: Path) -> list[str]:
    """The parallel-dump lines of a document's no-portal restore block, comments dropped."""
    lines = doc.read_text().split("without the portal", 1)[1].splitlines()
    picked = [line.split("#", 1)[0].strip() for line in lines if "tool_hub.tar" in line]
    picked += [
        line.split("#", 1)[0].strip()
        for line in lines
        if "tool_hub.dir" in line and "tool_hub.tar" not in line
    ]
    return picked


@pytest.mark.slow
def test_the_documented_no_portal_restore_of_a_parallel_dump_works_literally(
    pg_databases, keys, tmp_path
):
    """README's commands, run as written in a shell with only the checkout and the key
    ring, recreate the (meanwhile dropped) database from a parallel dump."""
    commands = _documented_commands(ROOT / "README.md")
    assert len(commands) == 3 and commands[-1].startswith("pg_restore -j")
    for doc in (ROOT / "backups/engine/FORMAT.md", ROOT / "docs/backups.md"):
        assert _documented_commands(doc) == commands, doc  # the same commands everywhere
    source_db = pg_databases("src")
    _fill(source_db)
    result = _backup(_spec(source_db), tmp_path, keys)
    assert result.status == "succeeded", result.error
    queries = [ROWS_CHECKSUM.format(table=t) for t in ("workflows", "executions", "notes")]
    before = [psql(q, source_db) for q in queries]
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(result.copies[0].location, work / "ARTIFACT.drpa")
    shutil.copy(result.copies[0].manifest_location, work / "ARTIFACT.drpa.manifest.json")
    psql(f'DROP DATABASE "{source_db}" WITH (FORCE)')  # the source is lost
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # python: this venv
        "PYTHONPATH": str(ROOT),
        "DR_ENCRYPTION_KEYS": TEST_MASTER_KEY,  # the `keys` fixture's ring
        "PGHOST": "127.0.0.1",
        "PGPORT": "5432",
        "PGUSER": "postgres",
    }
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, (command, done.stderr.decode())
    assert [psql(q, source_db) for q in queries] == before


def _live_in_group(pgid: int) -> list[str]:
    """States of the group's processes that are not zombies (PID 1 here may reap late)."""
    out = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True)
    return [s for s in out.stdout.split() if not s.startswith("Z")]


@pytest.mark.skipif(not pg_parallel.DIE_WITH_GROUP, reason="needs util-linux setpriv")
def test_a_killed_worker_takes_pg_dumps_forked_workers_with_it():
    """The group guard pg_dump runs under: when the process that started it dies by
    SIGKILL, every process of the group dies, forked children included (a parent-death
    signal on pg_dump alone would leave its -j workers running)."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from backups.engine.pg_parallel import DIE_WITH_GROUP\n"
            "p = subprocess.Popen([*DIE_WITH_GROUP, 'sh', '-c', 'sleep 60 & sleep 60'],"
            " start_new_session=True)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    pgid = int(child.stdout.readline())
    try:
        deadline = time.monotonic() + 10
        while len(_live_in_group(pgid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # guard shell, sh, two sleeps
        assert len(_live_in_group(pgid)) == 4
        child.kill()
        child.wait()
        deadline = time.monotonic() + 5
        while _live_in_group(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _live_in_group(pgid) == []
    finally:
        child.kill()
        subprocess.run(["pkill", "-KILL", "-g", str(pgid)], check=False)
