"""What a dead worker's unfinished write leaves is removed once it cannot belong to a live run."""

import os
import time

import pytest

from backups import retention
from backups.engine import DestinationSpec, open_destination
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, MotoS3


def test_old_temp_files_go_fresh_ones_and_artifacts_stay(local_dest, tmp_path):
    root = tmp_path / "local"
    root.mkdir(exist_ok=True)
    local_dest.path = str(root)
    local_dest.save()
    (root / "src").mkdir()
    old = root / "src" / ".20260101T000000Z-run1.drpa.tmp-aaaa"
    fresh = root / "src" / ".20260101T010000Z-run2.drpa.tmp-bbbb"
    artifact = root / "src" / "20251231T000000Z-run0.drpa"
    for path in (old, fresh, artifact):
        path.write_bytes(b"x")
    long_ago = time.time() - 10 * 86400
    os.utime(old, (long_ago, long_ago))
    os.utime(artifact, (long_ago, long_ago))

    removed = retention.abort_stale_uploads()

    assert removed[local_dest.name] == [str(old)]
    assert not old.exists() and fresh.exists() and artifact.exists()


@pytest.fixture
def s3():
    server = MotoS3().start()
    try:
        yield server.reset()
    finally:
        server.stop()


def test_stale_multipart_uploads_are_aborted_and_others_kept(s3):
    client = s3.client()
    client.create_bucket(Bucket="dr-backups")
    client.create_multipart_upload(Bucket="dr-backups", Key="tool-hub/a.drpa")
    client.create_multipart_upload(Bucket="dr-backups", Key="elsewhere/b.drpa")
    dest = open_destination(
        DestinationSpec(
            name="s3",
            kind="s3",
            config={
                "bucket": "dr-backups",
                "prefix": "tool-hub/",
                "region": "us-east-1",
                "endpoint_url": s3.endpoint,
            },
            secrets={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY},
        )
    )
    initiated = client.list_multipart_uploads(Bucket="dr-backups")["Uploads"][0]["Initiated"]
    age = time.time() - initiated.timestamp()  # moto stamps every upload 2010-11-10
    assert dest.abort_stale_uploads(age + 3600) == []  # younger than the cutoff: kept
    assert dest.abort_stale_uploads(age - 3600) == ["tool-hub/a.drpa"]
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket="dr-backups").get("Uploads", [])]
    assert left == ["elsewhere/b.drpa"]  # outside the destination's prefix: not ours
