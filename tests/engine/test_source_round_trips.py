"""Back up each source kind for real, unpack, restore with the stock tools, compare."""

import io
import os
import sqlite3
import subprocess
import tarfile
import threading
from datetime import UTC, datetime

import pytest

from backups.engine import BackupOptions, SourceSpec, run_backup, unpack_artifact

from .conftest import PG_ENV, local_spec, psql

ROWS_CHECKSUM = "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"


def fill_pg(db: str, rows: int = 5000) -> None:
    psql(
        "CREATE TABLE workflows (id int PRIMARY KEY, name text, spec jsonb);"
        "CREATE TABLE executions (id bigint PRIMARY KEY, workflow_id int REFERENCES workflows,"
        " status text, note text, started timestamptz);"
        "INSERT INTO workflows SELECT g, 'workflow ' || g, jsonb_build_object('steps', g % 7)"
        " FROM generate_series(1, 50) g;"
        f"INSERT INTO executions SELECT g, 1 + g % 50, 'ok', 'plaintext-marker-' || g,"
        f" timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, {rows}) g;",
        db,
    )


def unpack_to(path, location, keys, sha256):
    with open(location, "rb") as reader, open(path, "wb") as out:
        return unpack_artifact(reader, out, keys, sha256)


@pytest.mark.postgres
# "none" hands the reader's reused buffers straight to the encryptor: what it keeps must be
# a copy, or a later block would overwrite it.
@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_postgresql_round_trip_with_stock_pg_restore(compression, pg_databases, keys, tmp_path):
    source_db = pg_databases("src")
    fill_pg(source_db, rows=200_000)  # ~16 MB: more blocks than the reader has buffers
    before = datetime.now(UTC)
    result = run_backup(
        SourceSpec(
            "postgresql",
            {"host": "127.0.0.1", "port": 5432, "database": source_db, "user": "postgres"},
        ),
        [local_spec(tmp_path / "dest")],
        BackupOptions(
            "toolhub-pg/run1",
            compression=compression,
            master_keys=keys,
            manifest_extra={"source": "toolhub-pg", "run": 1},
        ),
    )
    assert result.status == "succeeded", result.error
    assert before <= result.data_taken_at <= result.finished
    copy = result.copies[0]
    assert copy.ok and copy.location.endswith("toolhub-pg/run1.drpa")
    assert result.manifest["source"] == "toolhub-pg"
    assert result.manifest["key_id"] == keys[0].key_id
    assert result.manifest["compression"] == compression
    assert result.manifest["tool_versions"]["pg_dump"].startswith("pg_dump")

    dump = tmp_path / "restored.dump"
    info = unpack_to(dump, copy.location, keys, result.sha256)
    assert info["bytes_out"] == result.bytes_read
    assert dump.read_bytes()[:5] == b"PGDMP"  # a pg_dump custom archive
    target_db = pg_databases("dst")
    subprocess.run(
        ["pg_restore", "--exit-on-error", "--no-owner", "-d", target_db, str(dump)],
        check=True,
        env=PG_ENV,
        capture_output=True,
    )
    for table in ("workflows", "executions"):
        query = ROWS_CHECKSUM.format(table=table)
        assert psql(query, target_db) == psql(query, source_db)


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_sqlite_copy_is_consistent_while_another_thread_writes(tmp_path, keys, journal_mode):
    db_path = tmp_path / "tool_hub.db"
    with sqlite3.connect(db_path) as conn:
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
        conn.execute("CREATE TABLE executions (id INTEGER PRIMARY KEY, payload TEXT)")
        conn.executemany(
            "INSERT INTO executions (payload) VALUES (?)", [("x" * 200,) for _ in range(20_000)]
        )
    stop = threading.Event()
    written = []

    def writer():
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            while not stop.is_set():
                with conn:
                    conn.execute("INSERT INTO executions (payload) VALUES (?)", ("y" * 500,))
                    conn.execute(
                        "UPDATE executions SET payload = payload || 'z' WHERE id = ?",
                        (1 + len(written) % 1000,),
                    )
                written.append(1)
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:  # the writer is really busy before the backup starts
            stop.wait(0.01)
        count_before = len(written)
        result = run_backup(
            SourceSpec("sqlite", {"path": str(db_path)}),
            [local_spec(tmp_path / "dest")],
            BackupOptions("toolhub-db/run1", master_keys=keys, scratch_dir=str(tmp_path)),
        )
        count_during = len(written)
    finally:
        stop.set()
        thread.join()
    assert result.status == "succeeded", result.error
    assert count_during > count_before, "the application kept writing during the backup"
    assert not list(tmp_path.glob("dr-sqlite-*")), "the temporary copy is removed"
    restored = tmp_path / "restored.db"
    unpack_to(restored, result.copies[0].location, keys, result.sha256)
    with sqlite3.connect(restored) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT count(*) FROM executions").fetchone()[0]
    assert rows >= 20_000 + count_before


def test_sqlite_missing_file_fails_clearly(tmp_path, keys):
    result = run_backup(
        SourceSpec("sqlite", {"path": str(tmp_path / "nope.db")}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("x/run1", master_keys=keys),
    )
    assert result.status == "failed"
    assert "SQLite database not found" in result.error
    assert not (tmp_path / "nope.db").exists(), "a missing database is not created"
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


ODD_NAMES = [
    "with space.conf",
    "ünïcödé-名前.yaml",
    "new\nline.txt",
    "-starts-with-dash",
    "quote'and\"double",
    "sub dir/nested/deep file.ini",
]


def test_files_round_trip_with_odd_names_and_excludes(tmp_path, keys):
    root = tmp_path / "config"
    for index, name in enumerate(ODD_NAMES):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content {index}\n".encode() * 10)
    (root / "cache").mkdir()
    (root / "cache" / "big.bin").write_bytes(os.urandom(1000))
    (root / "app.log").write_text("log line\n")
    (root / "sub dir" / "nested" / "old.log").write_text("old\n")
    os.symlink("with space.conf", root / "link")

    result = run_backup(
        SourceSpec("files", {"path": str(root), "exclude": ["*.log", "cache"]}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("toolhub-config/run1", compression="gzip", master_keys=keys),
    )
    assert result.status == "succeeded", result.error
    tar_path = tmp_path / "restored.tar"
    unpack_to(tar_path, result.copies[0].location, keys, result.sha256)

    out = tmp_path / "extracted"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(tar_path), "-C", str(out)], check=True)  # stock tar
    for index, name in enumerate(ODD_NAMES):
        assert (out / name).read_bytes() == f"content {index}\n".encode() * 10
    assert os.readlink(out / "link") == "with space.conf"
    assert not (out / "cache").exists()
    assert not list(out.rglob("*.log"))
    with tarfile.open(tar_path) as tar:
        assert tar.format == tarfile.PAX_FORMAT


def test_files_missing_directory_fails_clearly(tmp_path, keys):
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path / "missing")}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("x/run1", master_keys=keys),
    )
    assert result.status == "failed"
    assert "directory not found" in result.error


def test_unencrypted_backup_still_has_a_header_and_round_trips(tmp_path, keys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("hello\n")
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path / "src")}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("x/run1", encrypt=False),
    )
    assert result.status == "succeeded", result.error
    assert result.manifest["encrypted"] is False and result.manifest["key_id"] == ""
    out = io.BytesIO()
    with open(result.copies[0].location, "rb") as reader:
        unpack_artifact(reader, out, [], result.sha256)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.extractfile("./a.txt").read() == b"hello\n"
