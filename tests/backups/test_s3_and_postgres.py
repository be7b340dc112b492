"""The app's specs against real parts: S3 over HTTP (moto server), a real PostgreSQL server."""

import os
import subprocess
import uuid
from datetime import timedelta

import boto3
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from backups import health, retention, services, tasks
from backups.models import BackupCopy, BackupRun, Destination, Source
from dr_portal.runs import RunStatus
from tests.factories import BackupJobFactory, DestinationFactory, SourceFactory
from tests.marks import needs

KEY_ID, SECRET = "moto-key-id-1234", "moto-secret-value-5678"


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
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


@pytest.fixture
def s3_dest(db, moto_url):
    bucket = f"dr-{uuid.uuid4().hex[:10]}"
    _client(moto_url).create_bucket(Bucket=bucket)
    return DestinationFactory(
        name="offsite",
        kind="s3",
        bucket=bucket,
        prefix="tool-hub/",
        region="us-east-1",
        endpoint_url=moto_url,
        storage_class="STANDARD_IA",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        keep_days=0,
        keep_last=1,
    )


def test_backup_to_local_and_s3_with_stored_credentials(job, s3_dest, moto_url, capsys):
    job.destinations.add(s3_dest)
    run = services.start_run(job, "manual")
    tasks.run_backup(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    copy = run.copies.get(destination=s3_dest)
    assert copy.storage_class == "STANDARD_IA"
    keys = [o["Key"] for o in _client(moto_url).list_objects_v2(Bucket=s3_dest.bucket)["Contents"]]
    assert any(k.startswith("tool-hub/toolhub-db/") and k.endswith(".drpa") for k in keys)
    artifact = next(k for k in keys if k.endswith(".drpa"))
    head = _client(moto_url).head_object(Bucket=s3_dest.bucket, Key=artifact)
    assert head["StorageClass"] == "STANDARD_IA"
    assert SECRET not in run.log and KEY_ID not in run.log

    # The catalog can be rebuilt from the bucket alone.
    BackupCopy.objects.all().delete()
    BackupRun.objects.all().delete()
    call_command("rebuild_catalog", "offsite")
    assert "1 runs and 1 copies created" in capsys.readouterr().out
    rebuilt = BackupRun.objects.get()
    assert rebuilt.sha256 == run.sha256 and rebuilt.copies.get().storage_class == "STANDARD_IA"


def test_s3_retention_deletes_objects_but_respects_minimum_storage(job, s3_dest, moto_url):
    job.destinations.set([s3_dest])
    for _ in range(2):
        run = services.start_run(job, "manual")
        tasks.run_backup(run.pk)
    old = BackupRun.objects.order_by("pk").first()
    # STANDARD_IA bills 30 days: at 10 days old the copy stays, at 40 days it goes.
    for days, expect_delete in ((10, False), (40, True)):
        when = timezone.now() - timedelta(days=days)
        BackupRun.objects.filter(pk=old.pk).update(finished=when)
        decisions = retention.apply(s3_dest)
        assert [d.item.run_id for d in decisions if d.delete] == ([old.pk] if expect_delete else [])
    keys = [o["Key"] for o in _client(moto_url).list_objects_v2(Bucket=s3_dest.bucket)["Contents"]]
    assert len([k for k in keys if k.endswith(".drpa")]) == 1
    assert old.copies.get().deleted_at is not None


def test_s3_test_connection_and_health(operator_client, s3_dest):
    response = operator_client.post(
        reverse("backups:destination_test", args=[s3_dest.pk]), follow=True
    )
    assert "CompleteMultipartUpload, PutObject, GetObject" in response.content.decode()
    assert health.checks()["destination:offsite"] == (True, "upload, read back and delete work")


def test_s3_down_fails_the_test_quickly(operator_client, s3_dest):
    import time

    Destination.objects.filter(pk=s3_dest.pk).update(endpoint_url="http://127.0.0.1:9")
    started = time.monotonic()
    response = operator_client.post(
        reverse("backups:destination_test", args=[s3_dest.pk]), follow=True
    )
    assert "failed" in response.content.decode()
    assert time.monotonic() - started < 15


def test_s3_wrong_bucket_fails_the_test_without_leaking(operator_client, s3_dest):
    Destination.objects.filter(pk=s3_dest.pk).update(bucket="no-such-bucket-here")
    response = operator_client.post(
        reverse("backups:destination_test", args=[s3_dest.pk]), follow=True
    )
    body = response.content.decode()
    assert "failed" in body and SECRET not in body
    ok, detail = health.checks()["destination:offsite"]
    assert not ok and SECRET not in detail


# --- PostgreSQL -------------------------------------------------------------------------
PG_ENV = {**os.environ, "PGHOST": "127.0.0.1", "PGUSER": "postgres"}


def psql(sql, db="postgres"):
    return subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-qAt", "-d", db, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        env=PG_ENV,
    ).stdout.strip()


@pytest.fixture
@needs("postgres")
def pg_database():
    name = f"dr_backups_app_{uuid.uuid4().hex[:10]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        psql(
            "CREATE TABLE workflows (id serial primary key, name text);"
            "INSERT INTO workflows (name) SELECT 'wf-' || g FROM generate_series(1, 500) g;",
            name,
        )
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_source_backs_up_and_restores_with_pg_restore(
    system, local_dest, pg_database, tmp_path
):
    from backups.engine import open_destination, unpack_artifact
    from dr_portal.lib import keyring

    source = SourceFactory(
        system=system,
        name="pg",
        kind="postgresql",
        host="127.0.0.1",
        port=5432,
        database=pg_database,
        user="postgres",
        password="unused-with-trust-auth",
    )
    job = BackupJobFactory(name="pg-job", source=source)
    job.destinations.set([local_dest])
    run = services.execute(services.start_run(job, "manual"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert "unused-with-trust-auth" not in run.log
    dump = tmp_path / "out.dump"
    store = open_destination(local_dest.to_spec())
    with store.open_read(run.copies.get().location) as stored, open(dump, "wb") as out:
        unpack_artifact(stored, out, keyring.ring())
    target = f"{pg_database}_r"
    psql(f'CREATE DATABASE "{target}"')
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", target, str(dump)],
            check=True,
            env=PG_ENV,
            capture_output=True,
        )
        assert psql("SELECT COUNT(*) FROM workflows", target) == "500"
    finally:
        psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


@pytest.mark.postgres
def test_unreachable_postgres_is_a_failed_run_with_a_clear_message(system, local_dest):
    source = SourceFactory(
        system=system,
        name="pg-down",
        kind="postgresql",
        host="127.0.0.1",
        port=1,
        database="x",
        user="postgres",
        password="do-not-show-me",
    )
    job = BackupJobFactory(name="pg-down", source=source)
    job.destinations.set([local_dest])
    run = services.execute(services.start_run(job, "manual"))
    assert run.status == RunStatus.FAILED
    assert run.error and "do-not-show-me" not in run.error and "do-not-show-me" not in run.log
    assert not run.copies.exists()


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_portal_db_source_follows_a_postgresql_portal(local_dest, pg_database, settings):
    """When the portal runs on PostgreSQL, portal-db dumps it with pg_dump (read at run time)."""
    portal = Source.objects.get(is_portal_db=True)
    job = BackupJobFactory(name="portal-pg", source=portal)
    job.destinations.set([local_dest])
    pg = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": pg_database,
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "USER": "postgres",
        "PASSWORD": "",
    }
    # Only what the source reads changes; the test's own connection stays on its database.
    settings.DATABASES = {**settings.DATABASES, "default": pg}
    assert (
        portal.describe() == f"the portal's own database (postgresql: 127.0.0.1:5432/{pg_database})"
    )
    run = services.execute(services.start_run(job, "manual"))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.manifest["source_kind"] == "postgresql"
