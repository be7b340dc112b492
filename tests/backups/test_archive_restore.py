"""Archived copies (GLACIER): the scrub only looks at their metadata until someone asks for a
restore (the copy's button, `manage.py scrub --restore-archived`); the request is recorded
with its tier, days and state, and once the store has made the copy readable the scrub
reads it through. Real backups to moto's S3 server, which implements RestoreObject."""

import uuid

import boto3
import pytest
from botocore.config import Config
from django.core.management import call_command
from django.core.management.base import CommandError

from backups import archive, scrub, services, tasks
from backups.models import ArchiveRestore
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory

KEY_ID, SECRET = "archive-key-id-0001", "archive-secret-value-0123456789"


@pytest.fixture(scope="module")
def moto_url():
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    finally:
        server.stop()


def _client(url):
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
        ),
    )


@pytest.fixture
def glacier(db, moto_url):
    bucket = f"dr-glacier-{uuid.uuid4().hex[:8]}"
    _client(moto_url).create_bucket(Bucket=bucket)
    return DestinationFactory(
        s3=True,
        name="cold",
        bucket=bucket,
        endpoint_url=moto_url,
        path_style=True,
        storage_class="GLACIER",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )


@pytest.fixture
def archived_copy(job, glacier, moto_url):
    job.destinations.set([glacier])
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    copy = run.copies.get()
    head = _client(moto_url).head_object(Bucket=glacier.bucket, Key=copy.location.split("/", 3)[3])
    assert head["StorageClass"] == "GLACIER"
    return copy


def _proof():
    [destination] = scrub.scrub(["cold"]).destinations
    [proof] = destination.proofs
    return proof


def test_without_a_request_the_scrub_only_checks_metadata(archived_copy):
    proof = _proof()
    assert proof.outcome == "proven" and proof.bytes_read == 0
    assert proof.detail == "archive class: the object's metadata is present (not read)"
    assert not ArchiveRestore.objects.exists()  # never asked on its own


def test_restore_archived_command_then_the_scrub_reads_the_copy_through(archived_copy, capsys):
    call_command("scrub", "--restore-archived", "--tier", "Bulk", "--days", "2")
    assert "cold: run #" in capsys.readouterr().out
    row = ArchiveRestore.objects.get()
    assert (row.copy, row.tier, row.days, row.requested_by) == (
        archived_copy,
        "Bulk",
        2,
        "manage.py scrub",
    )
    assert row.state in ("in progress", "available")

    proof = _proof()

    row.refresh_from_db()
    assert row.state == "available" and row.available_until is not None
    assert proof.outcome == "proven"
    assert proof.bytes_read == archived_copy.bytes_stored
    assert "SHA-256 and authentication verified" in proof.detail
    # An open request is not repeated.
    call_command("scrub", "--restore-archived")
    assert ArchiveRestore.objects.count() == 1


def test_a_request_for_a_vanished_object_is_recorded_as_failed(archived_copy, glacier, moto_url):
    _client(moto_url).delete_object(
        Bucket=glacier.bucket, Key=archived_copy.location.split("/", 3)[3]
    )
    row = archive.request(archived_copy, "Standard", 1)
    assert row.state == "failed" and "RestoreObject failed" in row.error
    assert SECRET not in row.error
    with pytest.raises(CommandError, match="some restore requests failed"):
        call_command("scrub", "--restore-archived")


def test_bad_tier_or_days_and_non_archived_copies_are_refused(archived_copy, job, local_dest):
    with pytest.raises(archive.RestoreRefused, match="unknown retrieval tier"):
        archive.request(archived_copy, "Instant", 1)
    with pytest.raises(archive.RestoreRefused, match="1 to 30 days"):
        archive.request(archived_copy, "Bulk", 31)
    with pytest.raises(CommandError, match="--days: 1 to 30"):
        call_command("scrub", "--restore-archived", "--days", "0")
    job.destinations.set([local_dest])
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    with pytest.raises(archive.RestoreRefused, match="not a live copy in an archive class"):
        archive.request(run.copies.get(), "Bulk", 1)
    assert not ArchiveRestore.objects.exists()


def test_the_copy_button(archived_copy, operator_client, viewer_client, client):
    url = f"/backups/copies/{archived_copy.pk}/restore-archive/"
    page = operator_client.get(archived_copy.destination.get_absolute_url()).content.decode()
    assert url in page and "Request restore" in page
    assert operator_client.get(url).status_code == 405
    assert viewer_client.post(url, {"tier": "Bulk", "days": 2}).status_code == 403
    assert client.post(url, {"tier": "Bulk", "days": 2}).status_code in (302, 403)
    bad = operator_client.post(url, {"tier": "Bulk", "days": 99}, follow=True)
    assert "No restore requested" in bad.content.decode()
    assert not ArchiveRestore.objects.exists()

    done = operator_client.post(url, {"tier": "Standard", "days": 2}, follow=True)

    row = ArchiveRestore.objects.get()
    assert row.tier == "Standard" and row.requested_by
    assert f"Restore of {archived_copy.location} (Standard, 2 days)" in done.content.decode()
    page = operator_client.get(archived_copy.destination.get_absolute_url()).content.decode()
    assert "(Standard, asked" in page
