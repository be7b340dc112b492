"""The no-portal restore command, run as a subprocess from the checkout with only the key."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backups.engine import BackupOptions, SourceSpec, run_backup
from tests.environment import OLD_MASTER_KEY, TEST_MASTER_KEY

from .conftest import local_spec

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, keys: str | None = TEST_MASTER_KEY, stdin: bytes | None = None):
    # A bare environment: no Django settings, no portal database, only the key ring.
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    if keys is not None:
        env["DR_ENCRYPTION_KEYS"] = keys
    return subprocess.run(
        [sys.executable, "-m", "backups.engine.unpack", *map(str, args)],
        cwd="/",
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def backup(tmp_path, keys):
    db = tmp_path / "tool_hub.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO secrets (name) VALUES (?)", [(f"s{i}",) for i in range(3000)])
    conn.close()
    result = run_backup(
        SourceSpec("sqlite", {"path": str(db)}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("toolhub-db/run1", master_keys=keys),
    )
    assert result.status == "succeeded", result.error
    return Path(result.copies[0].location)


def test_unpack_to_a_file_gives_a_working_sqlite_database(backup, tmp_path):
    out = tmp_path / "out" / "restored.db"
    out.parent.mkdir()
    proc = cli(backup, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert b"checked against the manifest" in proc.stderr
    with sqlite3.connect(out) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM secrets").fetchone()[0] == 3000
    conn.close()
    assert sorted(p.name for p in out.parent.iterdir()) == ["restored.db"]


def test_key_file_with_a_rotated_ring(backup, tmp_path):
    key_file = tmp_path / "ring.txt"
    key_file.write_text(f"{OLD_MASTER_KEY}\n{TEST_MASTER_KEY}\n")
    proc = cli(backup, "-o", tmp_path / "restored.db", "--key-file", key_file, keys=None)
    assert proc.returncode == 0, proc.stderr


def test_stdin_to_stdout(backup):
    proc = cli("-", stdin=backup.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"SQLite format 3\x00")


def test_flipped_byte_exits_non_zero_and_leaves_no_output(backup, tmp_path):
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x40
    backup.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = cli(backup, "-o", out_dir / "restored.db")
    assert proc.returncode == 1
    assert b"authentication failed (modified or wrong key)" in proc.stderr
    assert list(out_dir.iterdir()) == [], "no partial output and no temporary file"


def test_missing_key_is_named(backup, tmp_path):
    proc = cli(backup, "-o", tmp_path / "restored.db", keys=OLD_MASTER_KEY)
    assert proc.returncode == 1
    assert b"not in the key ring" in proc.stderr
    assert not (tmp_path / "restored.db").exists()


def test_no_key_ring_at_all_is_explained(backup, tmp_path):
    proc = cli(backup, "-o", tmp_path / "restored.db", keys=None)
    assert proc.returncode == 1
    assert b"set DR_ENCRYPTION_KEYS or pass --key-file" in proc.stderr


def test_manifest_checksum_mismatch(backup, tmp_path):
    manifest_path = Path(str(backup) + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    proc = cli(backup, "-o", tmp_path / "restored.db")
    assert proc.returncode == 1
    assert b"checksum mismatch" in proc.stderr
    assert not (tmp_path / "restored.db").exists()


def test_existing_output_is_not_replaced_without_force(backup, tmp_path):
    out = tmp_path / "restored.db"
    out.write_text("keep me")
    assert cli(backup, "-o", out).returncode == 2
    assert out.read_text() == "keep me"
    assert cli(backup, "-o", out, "--force").returncode == 0


def test_info_names_the_key_without_needing_it(backup, keys):
    proc = cli("--info", backup, keys=None)
    assert proc.returncode == 0, proc.stderr
    fields = json.loads(proc.stdout)
    assert fields["key_id"] == keys[0].key_id
    assert fields["compression"] == "zstd"
    assert fields["encryption"] == "aes-256-gcm-chunked"


def test_engine_imports_without_django():
    code = (
        "import sys; import backups.engine, backups.engine.unpack; "
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd="/",
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
