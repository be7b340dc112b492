"""Which system an alert is about, and whether that system is in a maintenance window.

An alert knows only its key ("rpo:12", "backup:4", "failover:run:9:started"); the system
is looked up once, when the alert opens, and kept on the row.
"""

import re

from backups.models import BackupJob, Source
from incidents.models import MaintenanceWindow
from recovery.failover.models import FailoverRun, Runbook

# key pattern -> how to find the system id from the number in it
_SOURCE_KEYS = re.compile(r"^(?:rpo|restore-test|wal_gap):(\d+)$")
_JOB_KEYS = re.compile(r"^backup(?:-anomaly)?:(\d+)$")
_FAILOVER_KEYS = re.compile(r"^failover:run:(\d+):")
_RUNBOOK_KEYS = re.compile(r"^replication_lag:(\d+):")


def system_for_key(key: str) -> int | None:
    """The id of the system an alert key is about, or None (a destination, a drill, a test)."""
    if match := _SOURCE_KEYS.match(key):
        rows = Source.objects.filter(pk=int(match[1]))
        return rows.values_list("system_id", flat=True).first()
    if match := _JOB_KEYS.match(key):
        rows = BackupJob.objects.filter(pk=int(match[1]))
        return rows.values_list("source__system_id", flat=True).first()
    if match := _FAILOVER_KEYS.match(key):
        return (
            FailoverRun.objects.filter(pk=int(match[1])).values_list("system_id", flat=True).first()
        )
    if match := _RUNBOOK_KEYS.match(key):
        return Runbook.objects.filter(pk=int(match[1])).values_list("system_id", flat=True).first()
    return None


def in_maintenance(system_id: int | None, when) -> bool:
    if system_id is None:
        return False
    return MaintenanceWindow.objects.filter(system_id=system_id).active_at(when).exists()


def systems_in_maintenance(when) -> set[int]:
    return set(MaintenanceWindow.objects.active_at(when).values_list("system_id", flat=True))
