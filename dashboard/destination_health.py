"""Destinations in trouble, shown beside the worker banner on every page.

A destination is flagged for an hour after a backup could not write to it, a copy there
was found lost (scrub, restore test, verify_backup), or its last "Test" failed. One query
(the banner is on every page), evaluated only when a page renders it.
"""

from datetime import timedelta

from django.db.models import CharField, Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from backups.models import BackupCopy, BackupRun, Destination
from dr_portal.models import AuditEntry
from dr_portal.runs import RunStatus

WINDOW = timedelta(hours=1)


def failing_destinations(now=None) -> list[dict]:
    """[{pk, name, reasons}] of destinations with a failure in the last hour, by name."""
    since = (now or timezone.now()) - WINDOW
    rows = (
        Destination.objects.annotate(
            # backups.services logs "not stored at NAME: why" for each copy it could not write.
            write_failed=Exists(
                BackupRun.objects.filter(
                    finished__gte=since,
                    status__in=[RunStatus.PARTIAL, RunStatus.FAILED],
                    log__contains=Concat(Value("not stored at "), OuterRef("name"), Value(":")),
                )
            ),
            lost=Exists(BackupCopy.objects.filter(destination=OuterRef("pk"), lost_at__gte=since)),
            last_test=Subquery(
                AuditEntry.objects.filter(
                    object_type="backups.destination",
                    object_id=Cast(OuterRef("pk"), CharField()),
                    action="test destination",
                    at__gte=since,
                )
                .order_by("-at", "-pk")
                .values("detail")[:1]
            ),
        )
        .filter(Q(write_failed=True) | Q(lost=True) | Q(last_test__startswith="failed"))
        .order_by("name")
        .values("pk", "name", "write_failed", "lost", "last_test")
    )
    return [{"pk": r["pk"], "name": r["name"], "reasons": _reasons(r)} for r in rows]


def _reasons(row) -> list[str]:
    reasons = []
    if row["write_failed"]:
        reasons.append("a backup could not write to it")
    if row["lost"]:
        reasons.append("a copy there was found lost")
    if (row["last_test"] or "").startswith("failed"):
        reasons.append("its last test failed")
    return reasons
