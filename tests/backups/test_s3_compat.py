"""S3-compatible destinations in the portal: a store that refuses checksum headers the way
Backblaze B2 did (a real HTTP proxy in front of moto), the destination test behind the
button, /health/destinations and check_destination, part size and config as code."""

import io
import json
import uuid

import boto3
import pytest
from botocore.config import Config
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from backups import health, services, tasks
from backups.config import ConfigError
from backups.config import apply as apply_config
from backups.config import export as export_config
from backups.engine.destinations.s3_options import DEFAULT_PART_SIZE, MIB
from backups.forms import DestinationForm
from backups.models import Destination
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory
from tests.support.s3_proxy import StrictS3Proxy

KEY_ID, SECRET = "compat-key-id-1234", "compat-secret-value-5678"


@pytest.fixture(scope="module")
def strict_store():
    """(moto URL, strict proxy) for the module."""
    import moto.s3.models
    from moto.server import ThreadedMotoServer

    moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 1024
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    proxy = StrictS3Proxy(f"http://{host}:{port}").start()
    try:
        yield f"http://{host}:{port}", proxy
    finally:
        proxy.stop()
        server.stop()


@pytest.fixture
def b2_like(db, strict_store):
    """An S3 destination at the strict store, checksums auto."""
    moto_url, proxy = strict_store
    bucket = f"dr-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(request_checksum_calculation="when_required"),
    ).create_bucket(Bucket=bucket)
    proxy.seen.clear()
    return DestinationFactory(
        name="b2",
        s3=True,
        bucket=bucket,
        endpoint_url=proxy.endpoint,
        path_style=True,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )


def _backup(job):
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    return run


def test_auto_backs_up_to_a_store_refusing_checksum_headers_and_restores(
    job, b2_like, strict_store, work_dir
):
    job.destinations.set([b2_like])  # the only copy: the restore test must read it there
    run = _backup(job)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert strict_store[1].refused() == []
    copy = run.copies.get()
    assert copy.location.startswith(f"s3://{b2_like.bucket}/dr/")

    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_backup", "--latest", job.name, "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert exited.value.code == 0 and report["status"] == "passed", report
    reads = [s for s in strict_store[1].seen if s.operation == "GetObject"]
    assert any(s.path.split("?")[0].endswith(copy.location.rsplit("/", 1)[1]) for s in reads)
    assert strict_store[1].refused() == []


def test_first_backup_uses_64_mib_parts_and_the_next_plans_from_its_size(job, b2_like):
    job.destinations.set([b2_like])
    first = _backup(job)
    second = _backup(job)
    assert first.status == second.status == RunStatus.SUCCEEDED
    [(_, m1)] = _manifests(b2_like, first)
    [(_, m2)] = _manifests(b2_like, second)
    assert m1["upload_checksums"] == m2["upload_checksums"] == "none"
    assert m1["part_size"] == DEFAULT_PART_SIZE
    assert m2["part_size"] == 5 * MIB  # a small previous artifact: S3's smallest part

    Destination.objects.filter(pk=b2_like.pk).update(part_size_mb=8)
    third = _backup(job)
    [(_, m3)] = _manifests(b2_like, third)
    assert m3["part_size"] == 8 * MIB


def _manifests(destination, run):
    from backups.engine import open_destination

    store = open_destination(destination.to_spec())
    return [(loc, m) for loc, m in store.iter_manifests() if m["portal"]["run"] == run.pk]


def test_forced_sha256_fails_at_create_multipart_upload_everywhere_it_is_tested(
    job, b2_like, operator_client, capsys
):
    Destination.objects.filter(pk=b2_like.pk).update(checksums="sha256")
    b2_like.refresh_from_db()
    job.destinations.set([b2_like])
    run = _backup(job)
    assert run.status == RunStatus.FAILED
    assert "CreateMultipartUpload failed (InvalidArgument)" in run.error

    response = operator_client.post(
        reverse("backups:destination_test", args=[b2_like.pk]), follow=True
    )
    body = response.content.decode()
    assert "Test of b2 failed" in body and "CreateMultipartUpload failed (InvalidArgument)" in body
    assert SECRET not in body and KEY_ID not in body

    ok, detail = health.checks()["destination:b2"]
    assert not ok and detail.startswith("S3 destination b2: CreateMultipartUpload failed")

    with pytest.raises(CommandError, match="1 of 1 destinations failed"):
        call_command("check_destination", "b2", "--json")
    line = json.loads(capsys.readouterr().out)
    assert line["ok"] is False and "CreateMultipartUpload" in line["detail"]
    assert SECRET not in line["detail"]


def test_destination_test_passes_with_auto_and_says_what_it_did(b2_like, operator_client):
    response = operator_client.post(
        reverse("backups:destination_test", args=[b2_like.pk]), follow=True
    )
    body = response.content.decode()
    assert "CompleteMultipartUpload" in body and "checksums: none" in body
    assert health.checks()["destination:b2"] == (True, "upload, read back and delete work")
    out = io.StringIO()
    call_command("check_destination", stdout=out)
    assert out.getvalue().startswith("b2: ok: CreateMultipartUpload")


def test_check_destination_unknown_name(db):
    with pytest.raises(CommandError, match="no destination named nope"):
        call_command("check_destination", "nope")


def _form_data(**over):
    data = {
        "name": "wasabi",
        "kind": "s3",
        "bucket": "b",
        "prefix": "",
        "region": "eu-central-1",
        "endpoint_url": "https://s3.eu-central-1.wasabisys.com",
        "storage_class": "STANDARD",
        "checksums": "auto",
        "part_size_mb": "",
        "keep_days": 7,
        "keep_last": 3,
        "enabled": "on",
    }
    return {**data, **over}


@pytest.mark.parametrize(
    ("over", "field"),
    [({"part_size_mb": "4"}, "part_size_mb"), ({"part_size_mb": "5121"}, "part_size_mb")]
    + [({"checksums": "md5"}, "checksums")],
)
def test_form_refuses_part_sizes_and_modes_s3_does_not_have(db, over, field):
    form = DestinationForm(data=_form_data(**over))
    assert not form.is_valid() and field in form.errors
    assert not Destination.objects.exists()


def test_form_saves_the_compatibility_settings(db):
    form = DestinationForm(data=_form_data(part_size_mb="16", path_style="on", checksums="none"))
    assert form.is_valid(), form.errors
    dest = form.save()
    spec = dest.to_spec(previous_size=10**12)
    assert spec.config["part_size"] == 16 * MIB  # explicit beats auto
    assert spec.config["addressing_style"] == "path" and spec.config["checksums"] == "none"
    assert dest.effective_checksums == "none"


def test_config_as_code_round_trips_and_keeps_old_files_path_style(db):
    config = {
        "destinations": [
            {
                "name": "minio",
                "kind": "s3",
                "bucket": "b",
                "endpoint_url": "http://127.0.0.1:9000",
            },
            {
                "name": "gcs",
                "kind": "s3",
                "bucket": "g",
                "endpoint_url": "https://storage.googleapis.com",
                "checksums": "none",
                "part_size_mb": 32,
                "path_style": False,
            },
        ]
    }
    apply_config(config)
    minio, gcs = Destination.objects.get(name="minio"), Destination.objects.get(name="gcs")
    # A file written before path_style existed keeps what boto3 did for a custom endpoint.
    assert minio.path_style is True and minio.checksums == "auto"
    assert (gcs.path_style, gcs.checksums, gcs.part_size_mb) == (False, "none", 32)
    exported = {d["name"]: d for d in export_config()["destinations"]}
    assert "path_style" not in exported["minio"] and "checksums" not in exported["minio"]
    assert exported["gcs"]["path_style"] is False and exported["gcs"]["part_size_mb"] == 32
    changes = apply_config(export_config(), dry_run=True)
    assert {c.action for c in changes} == {"unchanged"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("checksums", "md5", "checksums"),
        ("part_size_mb", 2, "part_size_mb"),
        ("path_style", "yes", "true or false"),
    ],
)
def test_config_as_code_refuses_bad_compatibility_values(db, key, value, message):
    item = {"name": "x", "kind": "s3", "bucket": "b", key: value}
    with pytest.raises(ConfigError, match=message):
        apply_config({"destinations": [item]})
    assert not Destination.objects.exists()


def test_migration_keeps_custom_endpoints_path_style(db):
    import importlib

    migration = importlib.import_module("backups.migrations.0011_s3_compat")
    custom = DestinationFactory(s3=True, name="m", endpoint_url="http://minio:9000")
    aws = DestinationFactory(s3=True, name="a")
    local = DestinationFactory(name="l")
    migration.keep_path_style_for_custom_endpoints(apps, None)
    custom.refresh_from_db(), aws.refresh_from_db(), local.refresh_from_db()
    assert (custom.path_style, aws.path_style, local.path_style) == (True, False, False)
