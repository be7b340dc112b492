"""The compliance report's failover runs and real restores, and its controls mapping.

Kept beside dashboard/compliance.py (which composes the report): the two evidence sections
an auditor asks for besides backups, tests and drills, and the table that maps each control
the report is shown for (SOC 2 CC7.5, A1.2, A1.3; ISO/IEC 27001:2022 A.5.29, A.5.30,
A.8.13) to the sections that evidence it, with the gaps in the period stated plainly.
"""

from datetime import UTC, datetime, timedelta

from dr_portal.runs import DONE, RunStatus
from recovery.models import FailoverRun, Restore


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _s(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def _met(measured, target) -> bool | None:
    if measured is None or target is None:
        return None
    return measured <= target


def failovers(start, end, system_ids) -> dict:
    """Failover runs (test and live) that finished in the period."""
    rows = FailoverRun.objects.filter(finished__gte=start, finished__lt=end, status__in=DONE)
    if system_ids:
        rows = rows.filter(system_id__in=system_ids)
    runs = [
        {
            "id": run.pk,
            "runbook": run.runbook.name,
            "system": run.system.name if run.system_id else "",
            "mode": run.mode,
            "declared_at": _ts(run.declared_at),
            "finished": _ts(run.finished),
            "status": run.status,
            "verdict": run.verdict,
            "rto_s": _s(run.rto),
            "rto_target_s": _s(run.rto_target),
            "within_target": _met(run.rto, run.rto_target),
            "rpo_s": _s(run.rpo),  # data lost at promotion, from the newest heartbeat
            "lag_at_promotion_bytes": run.promotion_lag_bytes,
            "not_exercised": run.not_exercised,
        }
        for run in rows.select_related("runbook", "system").order_by("finished", "pk")
    ]
    live = sum(1 for r in runs if r["mode"] == "live")
    return {
        "count": len(runs),
        "live": live,
        "test": len(runs) - live,
        "succeeded": sum(1 for r in runs if r["status"] == RunStatus.SUCCEEDED),
        "runs": runs,
    }


def restores(start, end, source_ids) -> dict:
    """Real restores (not tests) that finished in the period; where to, by kind only."""
    rows = Restore.objects.filter(
        source_id__in=source_ids, finished__gte=start, finished__lt=end, status__in=DONE
    )
    items = [
        {
            "id": row.pk,
            "source": row.source.name,
            "backup_run": row.backup_run_id,
            "failure_type": row.failure_type,
            "target_kind": row.target_kind,
            "onto_source": row.onto_source,
            "finished": _ts(row.finished),
            "status": row.status,
            "rto_s": _s(row.rto),
            "rto_target_s": _s(row.rto_target),
            "within_target": _met(row.rto, row.rto_target),
        }
        for row in rows.select_related("source").order_by("finished", "pk")
    ]
    return {
        "count": len(items),
        "succeeded": sum(1 for r in items if r["status"] == RunStatus.SUCCEEDED),
        "items": items,
    }


# control, framework, what it asks, the report's sections that evidence it
CONTROLS = (
    ("CC7.5", "SOC 2", "Recovery from identified security incidents",
     ("incidents", "followups", "restores", "failovers")),
    ("A1.2", "SOC 2", "Backup processes and recovery infrastructure",
     ("backups", "copies_proven", "restores")),
    ("A1.3", "SOC 2", "Recovery plan procedures are tested",
     ("restore_tests", "drills", "failovers")),
    ("A.5.29", "ISO/IEC 27001:2022", "Information security during disruption",
     ("incidents", "availability", "failovers", "drills")),
    ("A.5.30", "ISO/IEC 27001:2022", "ICT readiness for business continuity",
     ("drills", "failovers", "restore_tests", "availability")),
    ("A.8.13", "ISO/IEC 27001:2022", "Information backup",
     ("backups", "copies_proven", "restore_tests", "restores")),
)  # fmt: skip

SECTION_TITLES = {
    "backups": "Backups",
    "copies_proven": "Copies proven",
    "restore_tests": "Restore tests",
    "restores": "Restores",
    "failovers": "Failover runs",
    "drills": "Drills",
    "incidents": "Incidents",
    "availability": "Availability",
    "followups": "Open follow-ups",
}


def _gaps(data: dict) -> dict[str, str]:
    """Per section, what is missing or failed in the period, in one plain sentence ("": none)."""
    b, t, d, f = data["backups"], data["restore_tests"], data["drills"], data["failovers"]
    gaps = {
        "backups": f"{b['sources_with_gaps']} source(s) went longer than the RPO target without "
        "a good backup"
        if b["sources_with_gaps"]
        else ("no backup ran" if not b["runs"] else ""),
        "copies_proven": ""
        if any(c["proven"] for c in data["copies_proven"]["destinations"])
        else f"no copy read back and verified by the scrub within "
        f"{data['copies_proven']['within_days']} days",
        "restore_tests": "no restore test finished"
        if not t["count"]
        else (
            f"{t['count'] - t['passed']} restore test(s) failed" if t["passed"] < t["count"] else ""
        ),
        "drills": "no drill was held" if not d["count"] else "",
        "failovers": "no failover run (test or live)" if not f["count"] else "",
        "availability": "availability target NOT met"
        if data["availability"].get("met") is False
        else "",
        "followups": f"{data['followups']['open_at_end']} follow-up(s) still open"
        if data["followups"].get("open_at_end")
        else "",
    }
    return {k: v for k, v in gaps.items() if v}


def controls(data: dict) -> list[dict]:
    """The controls table: each control, its sections, and the gaps among them."""
    gaps = _gaps(data)
    return [
        {
            "control": control,
            "framework": framework,
            "title": title,
            "sections": [SECTION_TITLES[s] for s in sections],
            "gaps": [f"{SECTION_TITLES[s]}: {gaps[s]}" for s in sections if s in gaps],
        }
        for control, framework, title, sections in CONTROLS
    ]
