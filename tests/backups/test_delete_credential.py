"""Deletion without the portal's everyday key: moto's S3 server enforcing IAM, the everyday key
allowed to write and read but not to delete, a separate delete credential allowed nothing but
deletes. Retention deletes with the delete credential, or (without one) deletes nothing and
leaves old copies to the bucket's lifecycle rule; the destination test proves the everyday
key cannot delete."""

import json
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.authorization import enable_iam_authentication

from backups import health, retention, services, tasks
from backups.config import apply as apply_config
from backups.config import export as export_config
from backups.models import Destination
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory

EVERYDAY = [
    "s3:PutObject",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:AbortMultipartUpload",
]
DELETE_ONLY = ["s3:DeleteObject", "s3:DeleteObjectVersion"]


def _config():
    return Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1},
        s3={"addressing_style": "path"},
    )


@pytest.fixture(scope="module")
def iam_s3():
    """moto's server with a bucket and three identities: everyday (no delete), deleter (only
    delete) and admin (everything). IAM is enforced only inside each test (`enforced`)."""
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    bucket = f"dr-nodelete-{uuid.uuid4().hex[:8]}"
    kwargs = {"region_name": "us-east-1", "endpoint_url": url, "config": _config()}
    iam = boto3.client("iam", aws_access_key_id="x", aws_secret_access_key="y", **kwargs)
    boto3.client("s3", aws_access_key_id="x", aws_secret_access_key="y", **kwargs).create_bucket(
        Bucket=bucket
    )
    keys = {}
    for name, actions in (("everyday", EVERYDAY), ("deleter", DELETE_ONLY), ("admin", ["s3:*"])):
        user = f"{name}-{bucket}"  # moto's IAM is global to the process
        iam.create_user(UserName=user)
        resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
        statement = {"Effect": "Allow", "Action": actions, "Resource": resources}
        iam.put_user_policy(
            UserName=user,
            PolicyName="dr",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[name] = (key["AccessKeyId"], key["SecretAccessKey"])
    try:
        yield {"url": url, "bucket": bucket, "keys": keys, "kwargs": kwargs}
    finally:
        server.stop()


@pytest.fixture
def enforced(iam_s3):
    with enable_iam_authentication():
        yield iam_s3


def _s3(iam_s3, who):
    key, secret = iam_s3["keys"][who]
    return boto3.client(
        "s3", aws_access_key_id=key, aws_secret_access_key=secret, **iam_s3["kwargs"]
    )


def _destination(iam_s3, *, delete_credential=True, **fields):
    """Keeps the newest 2 (the retention after each backup deletes nothing): a test sets 1."""
    everyday, deleter = iam_s3["keys"]["everyday"], iam_s3["keys"]["deleter"]
    extra = {}
    if delete_credential:
        extra = {"delete_access_key_id": deleter[0], "delete_secret_access_key": deleter[1]}
    values = {
        "name": "offsite",
        "bucket": iam_s3["bucket"],
        "prefix": f"t-{uuid.uuid4().hex[:8]}/",
        "endpoint_url": iam_s3["url"],
        "path_style": True,
        "access_key_id": everyday[0],
        "secret_access_key": everyday[1],
        "portal_cannot_delete": True,
        "keep_days": 0,
        "keep_last": 2,
    }
    return DestinationFactory(s3=True, **{**values, **extra, **fields})


def _backup(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def _keys(iam_s3, prefix):
    listed = _s3(iam_s3, "admin").list_objects_v2(Bucket=iam_s3["bucket"], Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_the_everyday_key_really_cannot_delete(enforced):
    s3 = _s3(enforced, "everyday")
    s3.put_object(Bucket=enforced["bucket"], Key="probe-iam", Body=b"x")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=enforced["bucket"], Key="probe-iam")
    with pytest.raises(ClientError, match="AccessDenied"):
        _s3(enforced, "deleter").get_object(Bucket=enforced["bucket"], Key="probe-iam")
    _s3(enforced, "deleter").delete_object(Bucket=enforced["bucket"], Key="probe-iam")


def test_retention_deletes_with_the_delete_credential_only(job, enforced):
    offsite = _destination(enforced)
    job.destinations.set([offsite])
    old, new = _backup(job), _backup(job)
    assert old.status == new.status == RunStatus.SUCCEEDED, (old.error, new.error)
    old_copy = old.copies.get()
    assert len(_keys(enforced, offsite.prefix)) == 4  # two artifacts, two manifests
    offsite.keep_last = 1
    offsite.save()

    decisions = {d.item.run_id: d for d in retention.apply(offsite)}

    assert decisions[old.pk].delete, decisions[old.pk].reason
    old_copy.refresh_from_db()
    assert old_copy.deleted_at is not None
    assert _keys(enforced, offsite.prefix) == sorted(
        [
            new.copies.get().location.split("/", 3)[3],
            new.copies.get().manifest_location.split("/", 3)[3],
        ]
    )


def test_without_a_delete_credential_retention_leaves_old_copies_to_the_lifecycle_rule(
    job, enforced
):
    offsite = _destination(enforced, delete_credential=False)
    assert offsite.deletes_left_to.startswith("left to the bucket's lifecycle rule")
    job.destinations.set([offsite])
    old, new = _backup(job), _backup(job)
    before = _keys(enforced, offsite.prefix)
    offsite.keep_last = 1
    offsite.save()

    decisions = {d.item.run_id: d for d in retention.apply(offsite)}

    waiting = decisions[old.pk]
    assert not waiting.delete
    assert "left to the bucket's lifecycle rule (the portal's key cannot delete)" in waiting.reason
    assert _keys(enforced, offsite.prefix) == before  # nothing deleted, nothing tried
    old_copy = old.copies.get()
    assert old_copy.deleted_at is not None and "lifecycle" in old_copy.deleted_reason
    # The rule removing it later is not a loss: the copy already left the catalog.
    _s3(enforced, "admin").delete_object(
        Bucket=enforced["bucket"], Key=old_copy.location.split("/", 3)[3]
    )
    assert retention.find_lost_copies(offsite) == []
    assert new.copies.get().is_live


def test_destination_test_proves_the_key_cannot_delete(db, enforced):
    offsite = _destination(enforced)
    ok, detail = health.test_destination(offsite)
    assert ok, detail
    assert "DeleteObject refused to the portal's key, as declared" in detail
    assert "deleted with the delete credential" in detail
    assert _keys(enforced, ".dr-portal-test/") == []
    for secret in offsite.secret_values():
        assert secret not in detail


def test_destination_test_fails_when_the_key_can_delete_after_all(db, enforced):
    admin = enforced["keys"]["admin"]
    offsite = _destination(enforced, delete_credential=False, name="liar", access_key_id=admin[0])
    offsite.secret_access_key = admin[1]
    offsite.save()
    ok, detail = health.test_destination(offsite)
    assert not ok
    assert "the portal's key deleted the test object" in detail
    assert "remove s3:DeleteObject" in detail


def test_destination_test_without_delete_credential_leaves_the_probe_to_the_rule(db, enforced):
    offsite = _destination(enforced, delete_credential=False, name="nodelete")
    ok, detail = health.test_destination(offsite)
    assert ok, detail
    assert "left under .dr-portal-test/ to the lifecycle rule" in detail


def test_delete_credential_is_never_shown(manager_client, iam_s3):
    offsite = _destination(iam_s3)
    deleter_secret = iam_s3["keys"]["deleter"][1]
    page = manager_client.get(offsite.get_absolute_url()).content.decode()
    assert "by a separate delete credential" in page and deleter_secret not in page
    form = manager_client.get(f"/backups/destinations/{offsite.pk}/edit/").content.decode()
    assert deleter_secret not in form and iam_s3["keys"]["deleter"][0] not in form


def test_a_half_delete_credential_is_refused(manager_client, iam_s3):
    offsite = _destination(iam_s3, delete_credential=False)
    response = manager_client.post(
        f"/backups/destinations/{offsite.pk}/edit/",
        {
            "name": offsite.name,
            "kind": "s3",
            "bucket": offsite.bucket,
            "prefix": offsite.prefix,
            "endpoint_url": offsite.endpoint_url,
            "path_style": "on",
            "storage_class": "STANDARD",
            "checksums": "auto",
            "portal_cannot_delete": "on",
            "keep_days": 1,
            "keep_last": 1,
            "enabled": "on",
            "new_delete_access_key_id": "AKIAHALFONLY",
        },
    )
    assert response.status_code == 400
    assert "needs both its access key id and its secret" in response.content.decode()
    offsite.refresh_from_db()
    assert not offsite.delete_access_key_id


def test_config_as_code_takes_the_delete_credential_from_the_environment(db, monkeypatch):
    monkeypatch.setenv("DR_TEST_DELETE_KEY", "AKIADELETE")
    monkeypatch.setenv("DR_TEST_DELETE_SECRET", "delete-secret-value-0123")
    apply_config(
        {
            "destinations": [
                {
                    "name": "vault",
                    "kind": "s3",
                    "bucket": "b",
                    "portal_cannot_delete": True,
                    "site": "AWS eu-central-1",
                    "delete_access_key_id_env": "DR_TEST_DELETE_KEY",
                    "delete_secret_access_key_env": "DR_TEST_DELETE_SECRET",
                }
            ]
        }
    )
    vault = Destination.objects.get(name="vault")
    assert vault.portal_cannot_delete and not vault.deletes_left_to
    assert vault.to_spec().secrets["delete_secret_access_key"] == "delete-secret-value-0123"
    exported = json.dumps(export_config())
    assert '"portal_cannot_delete": true' in exported and "delete-secret-value" not in exported
    assert '"site": "AWS eu-central-1"' in exported and vault.copy_site == "site:aws eu-central-1"
