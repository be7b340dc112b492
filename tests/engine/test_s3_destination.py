"""S3 through moto's server mode over HTTP with plain boto3: multipart, checksums, classes."""

import base64
import hashlib
import io
import os

import pytest

from backups.engine import (
    BackupOptions,
    DestinationError,
    SourceSpec,
    open_destination,
    run_backup,
    unpack_artifact,
)

from .conftest import bucket_state, local_spec


@pytest.fixture
def source_dir(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    # incompressible, so the stored stream spans several 256 KiB parts
    (root / "blob.bin").write_bytes(os.urandom(900_000))
    (root / "readme.txt").write_text("hello\n")
    return root


@pytest.mark.parametrize("storage_class", ["STANDARD_IA", "GLACIER"])
def test_backup_to_s3_and_local_at_once(s3, source_dir, tmp_path, keys, storage_class):
    server, bucket = s3
    result = run_backup(
        SourceSpec("files", {"path": str(source_dir)}),
        [
            local_spec(tmp_path / "dest"),
            server.spec(bucket, storage_class=storage_class, checksums="sha256"),
        ],
        BackupOptions("toolhub-config/run7", master_keys=keys, manifest_extra={"run": 7}),
    )
    assert result.status == "succeeded", result.error
    local, remote = result.copies
    assert remote.location == f"s3://{bucket}/dr/toolhub-config/run7.drpa"
    assert remote.manifest_location == remote.location + ".manifest.json"
    assert remote.storage_class == storage_class

    client = server.client()
    head = client.head_object(
        Bucket=bucket, Key="dr/toolhub-config/run7.drpa", ChecksumMode="ENABLED"
    )
    assert head["StorageClass"] == storage_class
    assert head["ContentLength"] == result.bytes_stored
    assert head.get("ChecksumSHA256"), head  # per-part SHA-256 checksums were sent
    assert int(head["ETag"].strip('"').split("-")[1]) >= 4  # multipart, 256 KiB parts
    assert bucket_state(server, bucket)[1] == []

    # The same bytes on both destinations; the manifest holds our SHA-256 of the whole stream.
    local_bytes = open(local.location, "rb").read()
    assert hashlib.sha256(local_bytes).hexdigest() == result.sha256
    destination = open_destination(server.spec(bucket, storage_class=storage_class))
    if storage_class == "GLACIER":
        # archived objects must be restored before reading; the error says why
        with pytest.raises(DestinationError, match="storage class"):
            destination.open_read(remote.location)
    else:
        remote_bytes = destination.open_read(remote.location).read()
        assert remote_bytes == local_bytes
        out = io.BytesIO()
        unpack_artifact(destination.open_read(remote.location), out, keys, result.sha256)
        assert out.getvalue()[:512].startswith(b"./")

    manifest_head = client.head_object(
        Bucket=bucket, Key="dr/toolhub-config/run7.drpa.manifest.json"
    )
    assert manifest_head.get("StorageClass", "STANDARD") == "STANDARD"  # readable without restore

    manifests = list(destination.iter_manifests())
    assert [loc for loc, _ in manifests] == [remote.manifest_location]
    assert manifests[0][1]["sha256"] == result.sha256
    assert manifests[0][1]["run"] == 7
    assert manifests[0][1]["storage_class"] == storage_class
    assert destination.exists(remote.location)

    destination.delete(remote.location)
    assert not destination.exists(remote.location)
    assert bucket_state(server, bucket) == ([], [])


def test_s3_probe_writes_reads_and_deletes(s3):
    server, bucket = s3
    open_destination(server.spec(bucket)).probe()
    assert bucket_state(server, bucket) == ([], [])


def test_s3_probe_failure_is_clear_and_has_no_secret(s3):
    server, _ = s3
    spec = server.spec("no-such-bucket-here")
    with pytest.raises(DestinationError) as caught:
        open_destination(spec).probe()
    message = str(caught.value)
    assert "NoSuchBucket" in message or "does not exist" in message
    assert "testing-secret-value" not in message


def test_s3_unreachable_endpoint_fails_the_copy_with_the_cause(tmp_path, source_dir, keys):
    from .conftest import S3Server

    dead = S3Server("http://127.0.0.1:9").spec("bucket")  # nothing listens on port 9
    dead.config["connect_timeout"] = 1
    result = run_backup(
        SourceSpec("files", {"path": str(source_dir)}),
        [local_spec(tmp_path / "dest"), dead],
        BackupOptions("x/run1", master_keys=keys),
    )
    assert result.status == "partial"
    assert result.copies[0].ok and not result.copies[1].ok
    assert "offsite" in result.error and "127.0.0.1:9" in result.error
    assert "testing-secret-value" not in result.error


def test_manifest_checksum_matches_sha256_of_parts(s3, source_dir, keys):
    """Our own per-part checksums are what S3 stored (composite SHA-256 of part digests)."""
    server, bucket = s3
    result = run_backup(
        SourceSpec("files", {"path": str(source_dir)}),
        [server.spec(bucket, checksums="sha256")],
        BackupOptions("x/run1", master_keys=keys),
    )
    assert result.status == "succeeded", result.error
    client = server.client()
    body = client.get_object(Bucket=bucket, Key="dr/x/run1.drpa")["Body"].read()
    part = 256 * 1024
    digests = b"".join(
        hashlib.sha256(body[i : i + part]).digest() for i in range(0, len(body), part)
    )
    head = client.head_object(Bucket=bucket, Key="dr/x/run1.drpa", ChecksumMode="ENABLED")
    expected = base64.b64encode(hashlib.sha256(digests).digest()).decode()
    assert head["ChecksumSHA256"].split("-")[0] == expected
