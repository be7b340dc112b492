"""What the backups app asks of recovery (registered with backups.retention at ready()).

- protected_backup_runs(source_ids): the newest backup per source that passed a
  restore test, so retention never deletes the last proven backup.
- backup_runs_in_use(): backups an active restore or restore test is reading.
"""

from dr_portal.runs import ACTIVE, RunStatus
from recovery.models import Restore, RestoreTest


def protected_backup_runs(source_ids=None) -> dict[int, str]:
    tests = RestoreTest.objects.filter(status=RunStatus.SUCCEEDED, backup_run__isnull=False)
    if source_ids is not None:
        tests = tests.filter(source_id__in=source_ids)
    rows = tests.order_by("source_id", "-backup_run__data_taken_at", "-backup_run_id").values_list(
        "backup_run_id", "source_id", "pk"
    )
    out, seen = {}, set()
    for run_id, source_id, test_id in rows:
        if source_id not in seen:
            seen.add(source_id)
            out[run_id] = f"newest backup that passed a restore test (#{test_id})"
    return out


def backup_runs_in_use() -> set[int]:
    used = set()
    for model in (RestoreTest, Restore):
        used.update(
            model.objects.filter(status__in=list(ACTIVE), backup_run__isnull=False).values_list(
                "backup_run_id", flat=True
            )
        )
    return used
