"""The pipeline under faults: nothing half-done is kept, other destinations carry on."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from backups.engine import BackupOptions, SourceSpec, pipeline, run_backup

from .conftest import (
    bucket_state,
    files_under,
    fill_big,
    local_spec,
    pg_dump_children,
    pg_spec,
    psql,
)

pytestmark = pytest.mark.faults


@pytest.fixture
def every_block(monkeypatch):
    """Report progress after every block, so a test can act mid-stream."""
    monkeypatch.setattr(pipeline, "PROGRESS_EVERY", 0.0)


def on_first_streaming(action):
    fired = []

    def progress(phase, bytes_read, bytes_stored):
        if phase == "streaming" and not fired:
            fired.append(bytes_read)
            action()

    progress.fired = fired
    return progress


def assert_nothing_kept(result, dest_dir, s3=None):
    assert result.status == "failed"
    assert all(not copy.ok and not copy.location for copy in result.copies)
    assert files_under(dest_dir) == [], "no artifact, manifest or temp file left on disk"
    if s3 is not None:
        server, bucket = s3
        assert bucket_state(server, bucket) == ([], []), "no object, no open multipart upload"
    assert pg_dump_children() == [], "pg_dump is not left running"


@pytest.mark.postgres
def test_encryption_is_really_applied(big_pg_db, tmp_path, keys, s3):
    server, bucket = s3
    marker = b"plaintext-marker-12345"
    # control: without encryption and compression the marker is in the stored bytes
    plain = run_backup(
        pg_spec(big_pg_db),
        [local_spec(tmp_path / "plain")],
        BackupOptions("db/plain", compression="none", encrypt=False),
    )
    assert plain.status == "succeeded", plain.error
    assert marker in open(plain.copies[0].location, "rb").read()

    sealed = run_backup(
        pg_spec(big_pg_db),
        [local_spec(tmp_path / "sealed"), server.spec(bucket)],
        BackupOptions("db/sealed", compression="none", master_keys=keys),
    )
    assert sealed.status == "succeeded", sealed.error
    client = server.client()
    stored = [open(path, "rb").read() for path in files_under(tmp_path / "sealed")]
    stored += [
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in bucket_state(server, bucket)[0]
    ]
    assert len(stored) == 4  # artifact + manifest on each destination
    for blob in stored:
        assert b"plaintext-marker" not in blob
        assert b"PGDMP" not in blob


@pytest.mark.postgres
def test_pg_dump_killed_mid_stream_fails_and_keeps_nothing(
    big_pg_db, tmp_path, keys, s3, every_block
):
    def kill_pg_dump():
        pids = pg_dump_children()
        assert pids, "pg_dump is running mid-stream"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    progress = on_first_streaming(kill_pg_dump)
    server, bucket = s3
    result = run_backup(
        pg_spec(big_pg_db),
        [local_spec(tmp_path / "dest"), server.spec(bucket)],
        BackupOptions("db/run1", master_keys=keys),
        progress=progress,
    )
    assert progress.fired, "the kill happened mid-stream"
    assert "pg_dump was killed by signal 9" in result.error
    assert_nothing_kept(result, tmp_path / "dest", s3)


@pytest.mark.postgres
@pytest.mark.slow  # creating, filling and dropping its own database (drop forces a checkpoint)
def test_database_dropped_mid_stream_fails_with_the_cause(
    pg_databases, tmp_path, keys, s3, every_block
):
    db = pg_databases("dropped")
    fill_big(db)
    progress = on_first_streaming(lambda: psql(f'DROP DATABASE "{db}" WITH (FORCE)'))
    server, bucket = s3
    result = run_backup(
        pg_spec(db),
        [local_spec(tmp_path / "dest"), server.spec(bucket)],
        BackupOptions("db/run1", master_keys=keys),
        progress=progress,
    )
    assert progress.fired
    assert "pg_dump exited with code 1" in result.error
    assert_nothing_kept(result, tmp_path / "dest", s3)


@pytest.mark.postgres
def test_unreachable_database_fails_without_leaking_the_password(tmp_path, keys):
    secret = "hunter2-very-secret"
    spec = SourceSpec(
        "postgresql",
        {"host": "127.0.0.1", "port": 1, "database": "tool_hub", "user": "toolhub"},
        secret,
    )
    result = run_backup(
        spec, [local_spec(tmp_path / "dest")], BackupOptions("db/run1", master_keys=keys)
    )
    assert result.status == "failed"
    assert "pg_dump exited with code 1" in result.error
    assert "Connection refused" in result.error or "connection" in result.error
    assert secret not in result.error
    assert files_under(tmp_path / "dest") == []


@pytest.mark.postgres
def test_cancel_mid_stream_aborts_cleanly(big_pg_db, tmp_path, keys, s3, every_block):
    cancel = threading.Event()
    progress = on_first_streaming(cancel.set)
    server, bucket = s3
    result = run_backup(
        pg_spec(big_pg_db),
        [local_spec(tmp_path / "dest"), server.spec(bucket)],
        BackupOptions("db/run1", master_keys=keys),
        progress=progress,
        cancel=cancel,
    )
    assert progress.fired
    assert result.cancelled and "cancelled" in result.error
    assert_nothing_kept(result, tmp_path / "dest", s3)


def test_unwritable_local_destination_gives_partial_with_the_s3_copy_kept(tmp_path, keys, s3):
    server, bucket = s3
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.bin").write_bytes(os.urandom(500_000))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup directory should be")
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path / "src")}),
        [local_spec(blocker / "backups"), server.spec(bucket)],
        BackupOptions("cfg/run1", master_keys=keys),
    )
    assert result.status == "partial"
    local, remote = result.copies
    assert not local.ok and "cannot write" in local.error and "local:" in result.error
    assert remote.ok
    objects, uploads = bucket_state(server, bucket)
    assert sorted(objects) == ["dr/cfg/run1.drpa", "dr/cfg/run1.drpa.manifest.json"]
    assert uploads == []


FULL_DISK_SCRIPT = """
import json, resource, signal, sys
sys.path.insert(0, sys.argv[1])
from backups.engine import BackupOptions, DestinationSpec, SourceSpec, run_backup
from dr_portal.lib.keyring import parse_ring
from tests.environment import TEST_MASTER_KEY

# A file size limit makes every local write past 1 MB fail with EFBIG, like a full disk.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.RLIM_INFINITY))
src, dest, url, bucket = sys.argv[2:6]
result = run_backup(
    SourceSpec("files", {"path": src}),
    [DestinationSpec("local", "local", {"path": dest}, {}),
     DestinationSpec("offsite", "s3", {"bucket": bucket, "prefix": "dr/", "endpoint_url": url,
                     "part_size": 256 * 1024},
                     {"access_key_id": "testing-key-id", "secret_access_key": "testing-secret-value"})],
    BackupOptions("cfg/run1", master_keys=parse_ring(TEST_MASTER_KEY)),
)
print(json.dumps({"status": result.status, "error": result.error,
                  "copies": [[c.destination, c.ok, c.error] for c in result.copies]}))
"""


def test_full_disk_mid_stream_fails_that_copy_only(tmp_path, s3):
    server, bucket = s3
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.bin").write_bytes(os.urandom(3_000_000))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            FULL_DISK_SCRIPT,
            root,
            str(tmp_path / "src"),
            str(tmp_path / "dest"),
            server.url,
            bucket,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "partial"
    (local_name, local_ok, local_error), (_, remote_ok, _) = outcome["copies"]
    assert local_name == "local" and not local_ok and "File too large" in local_error
    assert remote_ok
    assert files_under(tmp_path / "dest") == [], "the temporary file is removed"
    assert sorted(bucket_state(server, bucket)[0]) == [
        "dr/cfg/run1.drpa",
        "dr/cfg/run1.drpa.manifest.json",
    ]


def test_every_destination_failing_is_a_failed_run(tmp_path, keys):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("a")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path / "src")}),
        [local_spec(blocker / "one", "one"), local_spec(blocker / "two", "two")],
        BackupOptions("cfg/run1", master_keys=keys),
    )
    assert result.status == "failed"
    assert "one:" in result.error and "two:" in result.error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BackupOptions("../escape", encrypt=False), "invalid artifact key"),
        (BackupOptions("/abs/key", encrypt=False), "invalid artifact key"),
        (BackupOptions("ok/key", compression="lz4", encrypt=False), "unknown compression"),
        (BackupOptions("ok/key", master_keys=[]), "no master key"),
    ],
)
def test_bad_options_fail_before_touching_anything(tmp_path, options, message):
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path)}), [local_spec(tmp_path / "dest")], options
    )
    assert result.status == "failed" and message in result.error
    assert not (tmp_path / "dest").exists()


def test_progress_reports_phases_and_growing_counts(tmp_path, keys, every_block):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.bin").write_bytes(os.urandom(4_000_000))
    calls = []
    result = run_backup(
        SourceSpec("files", {"path": str(tmp_path / "src")}),
        [local_spec(tmp_path / "dest")],
        BackupOptions("cfg/run1", master_keys=keys),
        progress=lambda *args: calls.append(args),
    )
    assert result.status == "succeeded"
    phases = [c[0] for c in calls]
    assert phases[0] == "opening destinations" and phases[-1] == "done"
    assert "streaming" in phases and "writing manifests" in phases
    reads = [c[1] for c in calls]
    assert reads == sorted(reads) and reads[-1] == result.bytes_read
    assert calls[-1][2] == result.bytes_stored


@pytest.mark.postgres
def test_pg_dump_blocked_by_a_lock_fails_after_the_lock_timeout(big_pg_db, tmp_path, keys):
    import psycopg

    calls = []
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={big_pg_db}") as conn:
        conn.execute("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")  # like a long ALTER TABLE
        spec = pg_spec(big_pg_db)
        spec.config["lock_wait_timeout"] = "1500ms"
        result = run_backup(
            spec,
            [local_spec(tmp_path / "dest")],
            BackupOptions("db/run1", master_keys=keys),
            progress=lambda *args: calls.append(args),
        )
        conn.rollback()
    assert result.status == "failed"
    assert "statement timeout" in result.error and "LOCK TABLE public.blobs" in result.error
    assert "streaming" in [c[0] for c in calls], "progress went on while pg_dump waited"
    assert_nothing_kept(result, tmp_path / "dest")
