"""Immutable copies: S3 Object Lock set on every artifact and manifest at upload, checked by the
destination test, respected by retention and the admin, and the portal's own credentials
unable to delete a locked copy. Real backups to moto's S3 server over HTTP."""

import io
import json
import uuid
from datetime import timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from django.core.exceptions import ValidationError
from django.utils import timezone

from backups import health, retention, scrub, services, tasks
from backups.config import ConfigError
from backups.config import apply as apply_config
from backups.config import export as export_config
from backups.engine import DestinationError, open_destination
from backups.engine.destinations import MANIFEST_SUFFIX
from backups.models import BackupCopy, Destination
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory

KEY_ID, SECRET = "lock-key-id-0001", "lock-secret-value-0123456789"


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


def _client(url):
    """The portal's own credentials, used directly (as an intruder holding them would)."""
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


def _s3_destination(url, *, lock_bucket=True, **fields):
    bucket = f"dr-lock-{uuid.uuid4().hex[:10]}"
    _client(url).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=lock_bucket)
    fields = {"name": "vault", "immutable_days": 2, "lock_mode": "COMPLIANCE", **fields}
    return DestinationFactory(
        s3=True,
        bucket=bucket,
        endpoint_url=url,
        path_style=True,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        **fields,
    )


@pytest.fixture
def vault(db, moto_url):
    return _s3_destination(moto_url)


def _backup(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def _key(copy):
    return copy.location.split("/", 3)[3]


def test_artifact_and_manifest_are_locked_at_upload(job, vault, moto_url):
    job.destinations.add(vault)
    before = timezone.now()
    run = _backup(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    copy = run.copies.get(destination=vault)
    assert before + timedelta(days=2) - timedelta(seconds=2) <= copy.locked_until
    assert copy.locked_until <= timezone.now() + timedelta(days=2)
    client = _client(moto_url)
    for key in (_key(copy), _key(copy) + MANIFEST_SUFFIX):
        head = client.head_object(Bucket=vault.bucket, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE", key
        assert head["ObjectLockRetainUntilDate"] >= copy.locked_until - timedelta(seconds=2)
    manifest = json.loads(
        client.get_object(Bucket=vault.bucket, Key=_key(copy) + MANIFEST_SUFFIX)["Body"].read()
    )
    assert manifest["lock_mode"] == "COMPLIANCE" and manifest["locked_until"]
    assert run.copies.get(destination__kind="local").locked_until is None


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_the_portals_credentials_cannot_delete_a_locked_copy(job, moto_url, mode):
    vault = _s3_destination(moto_url, lock_mode=mode)
    job.destinations.set([vault])
    copy = _backup(job).copies.get()
    client, key = _client(moto_url), _key(copy)
    version = client.head_object(Bucket=vault.bucket, Key=key)["VersionId"]
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=vault.bucket, Key=key, VersionId=version)
    store = open_destination(vault.to_spec())
    with pytest.raises(DestinationError, match="locked until .* cannot be deleted before then"):
        store.delete(copy.location)
    # The portal never sends the governance bypass; nothing was removed either way.
    assert client.get_object(Bucket=vault.bucket, Key=key, VersionId=version)["Body"].read()
    assert store.exists(copy.location) and store.exists(copy.manifest_location)


def test_a_delete_marker_hides_nothing_from_the_portal(job, vault, moto_url, work_dir):
    job.destinations.set([vault])
    run = _backup(job)
    copy = run.copies.get()
    client = _client(moto_url)
    marker = client.delete_object(Bucket=vault.bucket, Key=_key(copy))  # an intruder's delete
    assert marker.get("DeleteMarker")
    store = open_destination(vault.to_spec())
    assert store.exists(copy.location)
    [result] = scrub.scrub(["vault"]).destinations
    assert [p.outcome for p in result.proofs] == ["proven"], result.proofs
    copy.refresh_from_db()
    assert copy.is_live and copy.proven_at


def test_retention_waits_for_the_lock_and_says_when(job, vault, moto_url):
    vault.keep_days, vault.keep_last = 0, 1
    vault.save()
    job.destinations.set([vault])
    old, new = _backup(job), _backup(job)
    decisions = {d.item.run_id: d for d in retention.apply(vault)}
    waiting = decisions[old.pk]
    old_copy = old.copies.get()
    assert not waiting.delete and waiting.not_before == old_copy.locked_until
    assert waiting.reason.startswith("immutable (S3 Object Lock) until")
    assert old_copy.is_live and open_destination(vault.to_spec()).exists(old_copy.location)
    assert decisions[new.pk].reason == "one of the newest 1"
    # Past the date the policy lets it go; the store itself still refuses while it holds a
    # lock (the engine checks before deleting anything), and the copy stays in the catalog.
    later = old_copy.locked_until + timedelta(days=1)
    [late] = [d for d in retention.apply(vault, now=later) if d.item.run_id == old.pk]
    assert not late.delete and "locked until" in late.reason
    old_copy.refresh_from_db()
    assert old_copy.deleted_at is None


def test_retention_deletes_every_version_once_the_lock_has_ended(job, moto_url):
    vault = _s3_destination(moto_url, immutable_days=0, keep_days=0, keep_last=2)
    job.destinations.set([vault])
    old, _ = _backup(job), _backup(job)
    copy = old.copies.get()
    client = _client(moto_url)
    client.delete_object(Bucket=vault.bucket, Key=_key(copy))  # a marker over the version
    # The destination locks now; this copy's lock (none) is over.
    vault.immutable_days, vault.keep_last = 2, 1
    vault.save()
    retention.apply(vault)
    copy.refresh_from_db()
    assert copy.deleted_at is not None
    listed = client.list_object_versions(Bucket=vault.bucket, Prefix=_key(copy))
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")


def test_a_bucket_without_object_lock_fails_the_copy_and_the_destination_test(job, moto_url):
    plain = _s3_destination(moto_url, lock_bucket=False)
    ok, detail = health.test_destination(plain)
    assert not ok
    assert "GetObjectLockConfiguration" in detail and "does not have Object Lock" in detail
    assert SECRET not in detail
    job.destinations.add(plain)
    run = _backup(job)
    assert run.status == RunStatus.PARTIAL and "vault" in run.error
    assert not run.copies.filter(destination=plain).exists()


def test_destination_test_reports_object_lock_and_leaves_nothing(vault, moto_url):
    ok, detail = health.test_destination(vault)
    assert ok, detail
    assert "Object Lock enabled: copies locked compliance for 2 days" in detail
    listed = _client(moto_url).list_object_versions(Bucket=vault.bucket)
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    unlocked = _s3_destination(moto_url, lock_bucket=False, immutable_days=0, name="plain")
    ok, detail = health.test_destination(unlocked)
    assert ok and "Object Lock not enabled; copies not locked" in detail


def test_immutability_needs_s3_and_at_most_ten_years(db, tmp_path):
    local = Destination(name="disk", kind="local", path=str(tmp_path), immutable_days=3)
    with pytest.raises(ValidationError) as error:
        local.full_clean()
    assert "the host can delete a local directory" in str(error.value).lower()
    s3 = Destination(name="b", kind="s3", bucket="b", immutable_days=3651)
    with pytest.raises(ValidationError, match="3650"):
        s3.full_clean()


def test_config_as_code_carries_immutability(db):
    item = {"name": "vault", "kind": "s3", "bucket": "b", "immutable_days": 30}
    apply_config({"destinations": [{**item, "lock_mode": "COMPLIANCE"}]})
    vault = Destination.objects.get(name="vault")
    assert (vault.immutable_days, vault.lock_mode) == (30, "COMPLIANCE")
    [exported] = export_config()["destinations"]
    assert exported["immutable_days"] == 30 and exported["lock_mode"] == "COMPLIANCE"
    with pytest.raises(ConfigError, match="lock_mode"):
        apply_config({"destinations": [{**item, "lock_mode": "forever"}]})
    assert Destination.objects.get(name="vault").lock_mode == "COMPLIANCE"


def test_the_admin_refuses_to_delete_a_locked_copy(job, vault, superuser_client):
    job.destinations.add(vault)
    run = _backup(job)
    copy = run.copies.get(destination=vault)
    for url in (
        f"/admin/backups/backupcopy/{copy.pk}/delete/",
        f"/admin/backups/backuprun/{run.pk}/delete/",
    ):
        response = superuser_client.post(url, {"post": "yes"}, follow=True)
        body = response.content.decode()
        assert "is immutable until" in body and "S3 Object Lock at vault" in body
    assert BackupCopy.objects.filter(pk=copy.pk).exists()
    unlocked = run.copies.get(destination__kind="local")
    superuser_client.post(f"/admin/backups/backupcopy/{unlocked.pk}/delete/", {"post": "yes"})
    assert not BackupCopy.objects.filter(pk=unlocked.pk).exists()


def test_dashboard_flags_destinations_without_immutability(job, vault, manager_client):
    from dashboard import board

    flags = {d["name"]: d["immutable"] for d in board.storage()}
    assert flags == {"local": False, "vault": True}
    body = manager_client.get("/").content.decode()
    assert "not immutable" in body and "immutable 2 d" in body
    page = manager_client.get(f"/backups/destinations/{vault.pk}/").content.decode()
    assert "S3 Object Lock, compliance" in page
    assert (
        "can delete these files"
        in manager_client.get(
            f"/backups/destinations/{job.destinations.get(kind='local').pk}/"
        ).content.decode()
    )


def test_check_destination_command_names_the_lock(vault):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("check_destination", "vault", stdout=out)
    assert "Object Lock enabled" in out.getvalue()
