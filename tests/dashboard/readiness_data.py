"""Recorded history for the readiness tests: systems, sources, runs, copies, tests (rows, no engine)."""

from datetime import timedelta

from django.utils import timezone

from dr_portal.runs import RunStatus
from tests.factories import (
    BackupCopyFactory,
    BackupJobFactory,
    BackupRunFactory,
    RestoreTestFactory,
    SourceFactory,
)


def destinations(tmp_path):
    from backups.models import Destination

    local, _ = Destination.objects.get_or_create(
        name="local", defaults={"kind": "local", "path": str(tmp_path / "store")}
    )
    s3, _ = Destination.objects.get_or_create(
        name="s3", defaults={"kind": "s3", "bucket": "dr-backups"}
    )
    glacier, _ = Destination.objects.get_or_create(
        name="glacier", defaults={"kind": "s3", "bucket": "dr-archive", "storage_class": "GLACIER"}
    )
    return local, s3, glacier


def source(name, system="tool-hub", data_class="critical", created=None, **extra):
    from backups.models import Source

    src = SourceFactory(
        system__name=system,
        name=name,
        kind="sqlite",
        path=f"/tmp/{name}.db",
        data_class=data_class,
        **extra,
    )
    if created:
        Source.objects.filter(pk=src.pk).update(created=created, config_changed_at=created)
        src.refresh_from_db()
    return src


def job(src, dests, schedule="0 * * * *", changed=None):
    from backups.models import BackupJob

    j = BackupJobFactory(name=f"{src.name}-job", source=src, schedule=schedule)
    j.destinations.set(dests)
    if changed:
        BackupJob.objects.filter(pk=j.pk).update(config_changed_at=changed)
    return j


def backup(src, at, dests=(), status=RunStatus.SUCCEEDED, size=1_000_000, deleted=False):
    run = BackupRunFactory(
        source=src,
        source_name=src.name,
        status=status,
        queued=at,
        started=at,
        data_taken_at=at if status != RunStatus.FAILED else None,
        finished=at + timedelta(minutes=1),
        bytes_stored=size,
    )
    for dest in dests:
        BackupCopyFactory(
            run=run,
            destination=dest,
            ok=True,
            bytes_stored=size,
            location="x",
            created=at,
            deleted_at=at if deleted else None,
        )
    return run


def restore_test(src, run, started, seconds=60, status=RunStatus.SUCCEEDED):
    from recovery.models import RestoreTest

    test = RestoreTestFactory(source=src, backup_run=run, queued=started)
    RestoreTest.objects.filter(pk=test.pk).update(
        status=status,
        started=started,
        finished=started + timedelta(seconds=seconds),
        rto=timedelta(seconds=seconds) if status == RunStatus.SUCCEEDED else None,
        throughput_bps=run.bytes_stored / seconds if run else None,
        data_at=run.data_taken_at if run else None,
        data_basis="backup",
    )
    test.refresh_from_db()
    return test


def targets():
    from recovery.models import RPOTarget, RTOTarget, ServiceLevel

    for data_class, hours in (("critical", 1), ("important", 24), ("non_critical", 168)):
        RPOTarget.objects.update_or_create(
            data_class=data_class, defaults={"target": timedelta(hours=hours)}
        )
    RTOTarget.objects.update_or_create(
        failure_type="database_failure", defaults={"target": timedelta(hours=1)}
    )
    if not ServiceLevel.objects.exists():
        ServiceLevel.objects.create()


def world(tmp_path, n_sources, runs_per_source, now=None, systems=2, offset=0):
    """n critical sources over `systems` systems: hourly runs (every 7th failed), a passed test each."""
    from backups.models import BackupCopy, BackupRun

    now = now or timezone.now()
    targets()
    local, s3, _ = destinations(tmp_path)
    made = []
    for i in range(offset, offset + n_sources):
        src = source(
            f"src-{i:03d}", system=f"system-{i % systems}", created=now - timedelta(days=60)
        )
        job(src, [local, s3], changed=now - timedelta(days=60))
        runs = []
        for k in range(runs_per_source):
            at = now - timedelta(minutes=20) - timedelta(hours=k)
            failed = k % 7 == 3
            runs.append(
                BackupRun(
                    source=src,
                    source_name=src.name,
                    status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                    queued=at,
                    started=at,
                    finished=at + timedelta(minutes=1),
                    data_taken_at=None if failed else at,
                    bytes_stored=1_000_000,
                )
            )
        BackupRun.objects.bulk_create(runs)
        good = list(src.runs.filter(status=RunStatus.SUCCEEDED).order_by("-data_taken_at"))
        BackupCopy.objects.bulk_create(
            BackupCopy(
                run=r, destination=d, ok=True, bytes_stored=r.bytes_stored, created=r.finished
            )
            for r in good
            for d in (local, s3)
        )
        restore_test(src, good[0], now - timedelta(minutes=10), seconds=120)
        made.append(src)
    return made
