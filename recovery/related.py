"""A backup run's page lists the restore tests and restores that used it (dr_portal.related)."""

from backups.models import BackupRun
from dr_portal.related import Related
from recovery.models import Restore, RestoreTest

SHOWN = 20


def backup_run_related(obj) -> list[Related]:
    if not isinstance(obj, BackupRun) or obj.pk is None:
        return []
    items = []
    tests = RestoreTest.objects.filter(backup_run=obj).select_related("source")
    for test in tests.defer("log").order_by("-queued")[:SHOWN]:
        when = test.finished or test.queued
        items.append(
            Related(
                "Restore tests of this backup",
                f"Restore test #{test.pk}",
                test.get_absolute_url(),
                test.status,
                f"{when:%Y-%m-%d %H:%M}",
            )
        )
    restores = Restore.objects.filter(backup_run=obj).select_related("source", "restore_target")
    for restore in restores.defer("log").order_by("-queued")[:SHOWN]:
        items.append(
            Related(
                "Restores from this backup",
                f"Restore #{restore.pk} to {restore.target or 'a free-form target'}",
                restore.get_absolute_url(),
                restore.status,
            )
        )
    return items
