"""Restore tests read S3 copies over HTTP (moto server mode): fallback from a lost local copy."""

import uuid

import boto3
import pytest

from tests.factories import DestinationFactory
from tests.recovery.conftest import run_test
from tests.support.data import backup

pytestmark = pytest.mark.django_db
KEY_ID, SECRET = "moto-recovery-key-0001", "moto-recovery-secret-0123456789"


@pytest.fixture(scope="module")
def moto_url():
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_destination(db, moto_url):
    bucket = f"dr-recovery-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    ).create_bucket(Bucket=bucket)
    return DestinationFactory(
        name="offsite",
        kind="s3",
        bucket=bucket,
        prefix="th/",
        region="us-east-1",
        endpoint_url=moto_url,
        storage_class="STANDARD",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )


def test_lost_local_copy_falls_back_to_s3(sqlite_source, s3_destination, work_dir):
    from pathlib import Path

    sqlite_source.job.destinations.add(s3_destination)
    run = backup(sqlite_source)
    assert run.copies.count() == 2
    local = run.copies.get(destination__kind="local")
    path = Path(local.location)
    if not path.is_absolute():
        path = Path(local.destination.path) / local.location
    path.unlink()
    test = run_test(sqlite_source)
    assert test.passed, test.error
    assert test.copy_used.startswith("offsite:")
    assert "local:" in test.log  # the missing local copy is named, not skipped silently
    assert SECRET not in test.log and KEY_ID not in test.log
    run.refresh_from_db()
    assert run.restorable
