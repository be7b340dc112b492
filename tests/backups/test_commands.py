"""backup_now, rebuild_catalog, the demo and the health checks, with real files."""

import json
import os

import pytest
from django.core.management import call_command
from django_q.models import OrmQ

from backups import health
from backups.models import BackupCopy, BackupJob, BackupRun, Source
from backups.tasks import run_backup
from dr_portal.runs import RunStatus
from tests.factories import DestinationFactory


def _backup_now(*args):
    with pytest.raises(SystemExit) as info:
        call_command("backup_now", *args)
        raise SystemExit(0)
    return info.value.code


def test_backup_now_json_succeeds(job, capsys):
    assert _backup_now(job.name, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    run = BackupRun.objects.get(pk=result["run"])
    assert result["status"] == "succeeded" and run.trigger == "command"
    assert result["bytes_stored"] == run.bytes_stored > 0
    assert result["sha256"] == run.sha256
    assert result["duration_s"] > 0
    assert result["copies"] == [
        {
            "destination": "local",
            "location": run.copies.get().location,
            "bytes_stored": run.bytes_stored,
        }
    ]
    assert result["error"] == ""
    assert os.path.exists(result["copies"][0]["location"])


def test_backup_now_exits_1_on_failure(job, sqlite_source, tmp_path, capsys):
    sqlite_source.path = str(tmp_path / "nope.db")
    sqlite_source.save()
    assert _backup_now(job.name, "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "failed" and "nope.db" in result["error"]
    assert result["copies"] == []


def test_backup_now_unknown_job(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no backup job named nope"):
        call_command("backup_now", "nope")


def test_rebuild_catalog_from_manifests_alone(job, local_dest, second_dest, capsys):
    job.destinations.add(second_dest)
    for _ in range(2):
        assert _backup_now(job.name) == 0
    originals = {
        r.sha256: (r.bytes_stored, r.data_taken_at, r.artifact_key) for r in BackupRun.objects.all()
    }
    # The catalog is lost.
    BackupCopy.objects.all().delete()
    BackupRun.objects.all().delete()
    call_command("rebuild_catalog", "local")
    out = capsys.readouterr().out
    assert "2 runs and 2 copies created" in out
    runs = BackupRun.objects.all()
    assert {r.sha256: (r.bytes_stored, r.data_taken_at, r.artifact_key) for r in runs} == originals
    for run in runs:
        assert run.status == RunStatus.SUCCEEDED and run.trigger == "catalog"
        assert run.source.name == "toolhub-db" and run.job == job
        assert os.path.exists(run.copies.get().location)
    # Idempotent, and the second destination's copies join the same runs.
    call_command("rebuild_catalog", "local")
    assert "0 runs and 0 copies created, 2 already known" in capsys.readouterr().out
    call_command("rebuild_catalog", "second")
    assert "0 runs and 2 copies created" in capsys.readouterr().out
    assert BackupRun.objects.count() == 2 and BackupCopy.objects.count() == 4


def test_rebuild_catalog_unknown_destination(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no destination named x"):
        call_command("rebuild_catalog", "x")


def test_health_checks_destinations_without_secrets(local_dest, tmp_path):
    DestinationFactory(name="off", kind="local", path=str(tmp_path / "x"), enabled=False)
    assert health.checks() == {"destination:local": (False, "directory missing")}
    os.makedirs(local_dest.path)
    assert health.checks() == {"destination:local": (True, "directory writable")}


def test_health_s3_unreachable_is_quick_and_secret_free(db):
    DestinationFactory(
        name="s3",
        kind="s3",
        bucket="b",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="AKIAXX",
        secret_access_key="very-secret",
    )
    ok, detail = health.checks()["destination:s3"]
    assert not ok and "very-secret" not in detail and "AKIAXX" not in detail


def test_demo_is_idempotent_and_backs_up(
    db, settings, tmp_path, capsys, django_capture_on_commit_callbacks
):
    settings.DR_DEMO_DIR = tmp_path / "demo"
    settings.DR_LOCAL_BACKUP_DIR = tmp_path / "backups"
    with django_capture_on_commit_callbacks(execute=True) as enqueued:
        call_command("load_demo")
        call_command("load_demo")
    out = capsys.readouterr().out
    assert "backups demo: 0 created, 5 already there (left as they are)" in out
    source = Source.objects.get(name="toolhub-db")
    assert source.data_class == "critical" and source.heartbeat_enabled
    assert [c["name"] for c in source.checks] == ["workflows", "executions"]
    assert Source.objects.filter(is_portal_db=True).count() == 1
    # Both demo sources, the portal's own database included, are proven after each backup.
    assert set(
        Source.objects.filter(restore_test_after_backup=True).values_list("name", flat=True)
    ) == {
        "toolhub-db",
        "portal-db",
    }
    jobs = {j.name: j for j in BackupJob.objects.all()}
    assert set(jobs) == {"toolhub-db-hourly", "portal-db-daily"}
    # Each job's first backup is queued once (not again on the second load) for the worker.
    first = {run.job.name: run for run in BackupRun.objects.select_related("job")}
    assert set(first) == set(jobs) and {r.status for r in first.values()} == {"queued"}
    sends = [c for c in enqueued if c.__qualname__.startswith("enqueue_run")]  # not cache bumps
    assert len(sends) == 2 and OrmQ.objects.count() == 2
    assert run_backup(first["toolhub-db-hourly"].pk) == "succeeded"
    assert _backup_now("toolhub-db-hourly") == 0
