"""S3-compatible stores: checksum modes, part size, addressing, and the destination test,
against moto over HTTP behind a proxy that refuses checksum headers the way Backblaze B2 did."""

import io
import os
import tarfile
from urllib.parse import urlsplit

import pytest

from backups.engine import BackupOptions, SourceSpec, open_destination, run_backup, unpack_artifact
from backups.engine.destinations.s3_options import (
    DEFAULT_PART_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIB,
    MIN_PART_SIZE,
    auto_part_size,
    resolve_checksums,
)
from backups.engine.errors import StoreOperationError
from tests.support.s3_proxy import StrictS3Proxy

from .conftest import bucket_state

SECRET = "testing-secret-value"  # the S3Server fixture's secret key


@pytest.fixture
def strict(s3_server):
    proxy = StrictS3Proxy(s3_server.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def source_dir(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "blob.bin").write_bytes(os.urandom(700_000))  # several 256 KiB parts
    return root


def _backup(source_dir, spec, keys, key="toolhub/run1"):
    return run_backup(
        SourceSpec("files", {"path": str(source_dir)}),
        [spec],
        BackupOptions(key, master_keys=keys),
    )


def test_auto_sends_no_checksum_header_to_a_strict_store_and_the_backup_restores(
    s3, strict, source_dir, keys
):
    server, bucket = s3
    spec = server.spec(bucket, endpoint_url=strict.endpoint, checksums="auto")
    result = _backup(source_dir, spec, keys)

    assert result.status == "succeeded", result.error
    assert strict.refused() == []
    operations = [s.operation for s in strict.seen]
    assert operations == [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
        "PutObject",
    ]
    # The copy's manifest records how it was uploaded.
    destination = open_destination(spec)
    [(_, manifest)] = list(destination.iter_manifests())
    assert manifest["upload_checksums"] == "none" and manifest["part_size"] == 256 * 1024
    out = io.BytesIO()
    unpack_artifact(destination.open_read(result.copies[0].location), out, keys, result.sha256)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        restored = tar.extractfile("./blob.bin").read()
    assert restored == (source_dir / "blob.bin").read_bytes()
    assert strict.refused() == []  # reading back sent none either


def test_sha256_to_a_strict_store_fails_at_create_multipart_upload(s3, strict, source_dir, keys):
    server, bucket = s3
    spec = server.spec(bucket, endpoint_url=strict.endpoint, checksums="sha256")
    result = _backup(source_dir, spec, keys)

    assert result.status == "failed"
    assert "CreateMultipartUpload failed (InvalidArgument)" in result.error
    assert [s.operation for s in strict.seen] == ["CreateMultipartUpload"]
    assert strict.refused()[0].refused.startswith("x-amz-")
    with pytest.raises(StoreOperationError) as caught:
        open_destination(spec).probe()
    assert caught.value.operation == "CreateMultipartUpload"
    assert caught.value.code == "InvalidArgument"
    assert SECRET not in str(caught.value) and "testing-key-id" not in str(caught.value)
    assert bucket_state(server, bucket) == ([], [])


@pytest.mark.parametrize("mode", ["auto", "none", "crc32", "sha256"])
def test_destination_test_does_what_a_backup_does_and_leaves_nothing(s3, mode):
    server, bucket = s3
    proxy = StrictS3Proxy(server.url).start()
    try:
        # The same moto, seen directly (accepts everything) or through the strict proxy.
        endpoint = server.url if mode in ("crc32", "sha256") else proxy.endpoint
        open_destination(server.spec(bucket, endpoint_url=endpoint, checksums=mode)).probe()
    finally:
        proxy.stop()
    if endpoint == proxy.endpoint:
        assert [s.operation for s in proxy.seen] == [
            "CreateMultipartUpload",
            "UploadPart",
            "CompleteMultipartUpload",
            "PutObject",
            "GetObject",
            "DeleteObject",
            "DeleteObject",
        ]
        assert proxy.refused() == []
    assert bucket_state(server, bucket) == ([], [])


def test_crc32_and_sha256_checksums_reach_the_store(s3, source_dir, keys):
    server, bucket = s3
    for mode, field in (("crc32", "ChecksumCRC32"), ("sha256", "ChecksumSHA256")):
        result = _backup(source_dir, server.spec(bucket, checksums=mode), keys, f"t/{mode}")
        assert result.status == "succeeded", result.error
        head = server.client().head_object(
            Bucket=bucket, Key=f"dr/t/{mode}.drpa", ChecksumMode="ENABLED"
        )
        assert head.get(field), head


def test_path_style_on_and_off_both_work(s3, strict, source_dir, keys, monkeypatch):
    server, bucket = s3
    on = server.spec(bucket, endpoint_url=strict.endpoint, addressing_style="path")
    assert _backup(source_dir, on, keys, "t/path").status == "succeeded"
    assert all(s.path.startswith(f"/{bucket}/") for s in strict.seen)

    # Virtual-hosted: the bucket in the host name. No DNS knows "s3.dr-test.invalid", so the
    # client reaches it through the proxy (HTTP_PROXY), which forwards the Host to moto.
    strict.seen.clear()
    monkeypatch.setenv("HTTP_PROXY", strict.endpoint)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")
    port = urlsplit(server.url).port
    off = server.spec(
        bucket, endpoint_url=f"http://s3.dr-test.invalid:{port}", addressing_style="virtual"
    )
    result = _backup(source_dir, off, keys, "t/virtual")
    assert result.status == "succeeded", result.error
    assert strict.seen and all(
        s.host.startswith(f"{bucket}.s3.dr-test.invalid") for s in strict.seen
    )
    assert "dr/t/virtual.drpa" in bucket_state(server, bucket)[0]


def test_resolve_checksums_full_on_aws_only():
    assert resolve_checksums("auto", "") == "sha256"
    assert resolve_checksums("auto", "https://s3.eu-west-1.amazonaws.com") == "sha256"
    assert resolve_checksums(None, "https://s3.us-west-002.backblazeb2.com") == "none"
    assert resolve_checksums("auto", "https://amazonaws.com.evil.example") == "none"
    assert resolve_checksums("crc32", "https://storage.googleapis.com") == "crc32"
    with pytest.raises(ValueError, match="unknown checksum mode"):
        resolve_checksums("md5", "")


@pytest.mark.parametrize(
    "previous",
    [1, 10 * MIB, 40 * 1024**3, 1024**4, 8 * 1024**4, 30 * 1024**4],
)
def test_auto_part_size_keeps_the_expected_size_within_10000_parts(previous):
    part = auto_part_size(previous)
    assert MIN_PART_SIZE <= part <= MAX_PART_SIZE and part % MIB == 0
    expected = previous * 1.5
    if expected <= MAX_PART_SIZE * MAX_PARTS:
        assert -(-expected // part) <= MAX_PARTS


def test_auto_part_size_without_history_and_at_the_limits():
    assert auto_part_size(None) == auto_part_size(0) == DEFAULT_PART_SIZE
    assert auto_part_size(1000) == MIN_PART_SIZE
    assert auto_part_size(100 * 1024**4) == MAX_PART_SIZE  # beyond S3: the largest part
    assert auto_part_size(1024**4) == 158 * MIB  # 1.5 TiB / 10,000, rounded up to MiB
