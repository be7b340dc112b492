"""The local destination: atomic files, manifests beside them, probe, listing, deletion."""

import json
import os
import threading

import pytest

from backups.engine import (
    BackupOptions,
    DestinationError,
    SourceSpec,
    open_destination,
    pipeline,
    run_backup,
)

from .conftest import files_under, local_spec


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "data.bin").write_bytes(os.urandom(2_500_000))
    return SourceSpec("files", {"path": str(root)})


def test_only_a_temporary_name_is_visible_while_writing(tmp_path, source, keys, monkeypatch):
    monkeypatch.setattr(pipeline, "PROGRESS_EVERY", 0.0)
    seen = []

    def progress(phase, *_):
        if phase == "streaming":
            seen.append([os.path.basename(p) for p in files_under(tmp_path / "dest")])

    result = run_backup(
        source,
        [local_spec(tmp_path / "dest")],
        BackupOptions("cfg/run1", master_keys=keys),
        progress=progress,
    )
    assert result.status == "succeeded", result.error
    assert seen and all(
        len(names) <= 1 and all(n.startswith(".run1.drpa.tmp-") for n in names) for names in seen
    )
    assert [os.path.basename(p) for p in files_under(tmp_path / "dest")] == [
        "run1.drpa",
        "run1.drpa.manifest.json",
    ]
    manifest = json.loads(open(result.copies[0].manifest_location).read())
    assert manifest["sha256"] == result.sha256
    assert manifest["location"] == result.copies[0].location
    assert manifest["bytes_stored"] == os.path.getsize(result.copies[0].location)


def test_an_existing_backup_is_never_overwritten(tmp_path, source, keys):
    first = run_backup(
        source, [local_spec(tmp_path / "dest")], BackupOptions("cfg/run1", master_keys=keys)
    )
    before = open(first.copies[0].location, "rb").read()
    second = run_backup(
        source, [local_spec(tmp_path / "dest")], BackupOptions("cfg/run1", master_keys=keys)
    )
    assert second.status == "failed" and "already exists" in second.error
    assert open(first.copies[0].location, "rb").read() == before


def test_probe_list_exists_delete(tmp_path, source, keys):
    spec = local_spec(tmp_path / "dest")
    destination = open_destination(spec)
    destination.probe()
    assert files_under(tmp_path / "dest") == []
    results = [
        run_backup(
            source,
            [spec],
            BackupOptions(f"cfg/run{i}", master_keys=keys, manifest_extra={"run": i}),
        )
        for i in (1, 2)
    ]
    listed = list(destination.iter_manifests())
    assert [m["run"] for _, m in listed] == [1, 2]
    assert [loc for loc, _ in listed] == [r.copies[0].manifest_location for r in results]
    location = results[0].copies[0].location
    assert destination.exists(location)
    destination.delete(location)
    assert not destination.exists(location)
    assert [m["run"] for _, m in destination.iter_manifests()] == [2]


def test_probe_of_an_unusable_path_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DestinationError, match="cannot write to"):
        open_destination(local_spec(blocker / "backups")).probe()


def test_s3_going_down_mid_stream_keeps_the_local_copy(tmp_path, source, keys, monkeypatch):
    import boto3
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    from .conftest import S3Server

    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stopped = threading.Event()
    try:
        host, port = server.get_host_and_port()
        s3 = S3Server(f"http://{host}:{port}")
        s3.client().create_bucket(Bucket="going-down")
        spec = s3.spec("going-down", max_attempts=1, connect_timeout=2)
        monkeypatch.setattr(pipeline, "PROGRESS_EVERY", 0.0)

        def progress(phase, *_):
            if phase == "streaming" and not stopped.is_set():
                server.stop()
                stopped.set()

        result = run_backup(
            source,
            [local_spec(tmp_path / "dest"), spec],
            BackupOptions("cfg/run1", master_keys=keys),
            progress=progress,
        )
    finally:
        if not stopped.is_set():
            server.stop()
    assert boto3  # plain boto3 talks to the server above
    assert result.status == "partial", result.error
    local, remote = result.copies
    assert local.ok and not remote.ok
    assert "offsite" in result.error
    assert [os.path.basename(p) for p in files_under(tmp_path / "dest")] == [
        "run1.drpa",
        "run1.drpa.manifest.json",
    ]


def test_a_backup_appearing_meanwhile_is_not_replaced(tmp_path, source, keys, monkeypatch):
    monkeypatch.setattr(pipeline, "PROGRESS_EVERY", 0.0)
    final = tmp_path / "dest" / "cfg" / "run1.drpa"

    def progress(phase, *_):
        if phase == "streaming" and not final.exists():
            final.write_bytes(b"another writer's backup")

    result = run_backup(
        source,
        [local_spec(tmp_path / "dest")],
        BackupOptions("cfg/run1", master_keys=keys),
        progress=progress,
    )
    assert result.status == "failed" and "already exists" in result.error
    assert final.read_bytes() == b"another writer's backup"
    assert [os.path.basename(p) for p in files_under(tmp_path / "dest")] == ["run1.drpa"]
