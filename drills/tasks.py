"""django-q2 entry points of the drills app: ids in, rows updated.

django-q2's worker closes stale database connections before each task, so these do not.
"""

import logging

from django.utils import timezone

from drills import services
from drills.models import CleanupState, DrillPlan, DrillRun, DrillStatus
from incidents.alerts import alert, recover

log = logging.getLogger(__name__)


def verify_cleanup(drill_id: int) -> str | None:
    """Remove and check gone what a drill created (safe to run twice: it only re-checks)."""
    drill = DrillRun.objects.filter(pk=drill_id).first()
    if drill is None:
        return None
    try:
        return services.verify_cleanup(drill)
    except Exception as exc:  # recorded on the drill, never swallowed silently
        log.exception("cleanup check of drill %s failed", drill_id)
        DrillRun.objects.filter(pk=drill_id).update(
            cleanup_state=CleanupState.FAILED, cleanup_checked_at=timezone.now()
        )
        services.event(drill, f"Cleanup check failed: {type(exc).__name__}: {exc}"[:2000])
        return CleanupState.FAILED


def sync_running_drills() -> int:
    """Every minute: read automated results of running drills and move them on."""
    count = 0
    for drill in DrillRun.objects.filter(status=DrillStatus.RUNNING):
        try:
            services.sync(drill)
            count += 1
        except Exception:
            log.exception("could not sync drill %s", drill.pk)
    return count


def check_overdue_drills(now=None) -> list[int]:
    """Daily: alert drill_overdue for each plan whose date passed without a run; recover others."""
    now = now or timezone.now()
    overdue = []
    for plan in DrillPlan.objects.all():
        since = plan.overdue_since(now)
        if since is None:
            recover(plan.alert_key(), f"Drill plan “{plan.name}” is no longer overdue")
            continue
        overdue.append(plan.pk)
        alert(
            plan.alert_key(),
            "drill_overdue",
            f"Drill “{plan.name}” is overdue: it was due {since:%Y-%m-%d %H:%M %Z}",
            detail=f"Schedule: {plan.schedule_text}. No drill of this plan ran for that date.",
            url=plan.get_absolute_url(),
            contacts=list(plan.participants.all()),
        )
    return overdue
