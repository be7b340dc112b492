"""Pre and post hooks of a registered restore target, around every restore into it.

The same hooks as a backup job's (backups/hooks.py: signed webhooks with retries, commands
set by a superuser only, the timeout, `pre_hook_required`), with a restore's payload. They
run for the full and partial restores (recovery/restores.py), the point-in-time restores
(recovery/pitr_restores.py) and so the failover `restore` and `pitr_restore` steps, which
go through those: the pre-hooks once the backup is chosen and before anything reaches the
target, the post-hooks once the restore has finished, with its outcome.
"""

from django.utils import timezone

from backups import hooks
from recovery.models import Restore


def mode(restore: Restore) -> str:
    """full, partial (chosen tables or paths) or pitr (a point in time)."""
    if restore.pitr:
        return "pitr"
    return "partial" if restore.tables or restore.paths else "full"


def _seconds(value):
    return value.total_seconds() if value is not None else None


def payload(restore: Restore, phase: str) -> dict:
    """What a hook learns of the restore: ids, names, mode, outcome, timings, RTO."""
    target = restore.restore_target
    return {
        "event": f"restore.{phase}",
        "phase": phase,
        "restore": restore.pk,
        "source": restore.source.name,
        "system": restore.source.system.name,
        "target": target.name if target else "",
        "target_kind": restore.target_kind,
        "backup_run": restore.backup_run_id,
        "mode": mode(restore),
        "point_in_time": hooks.iso(restore.target_time),
        "failure_type": restore.failure_type,
        "outcome": restore.status,
        "error": restore.error,
        "declared_at": hooks.iso(restore.declared_at),
        "queued": hooks.iso(restore.queued),
        "started": hooks.iso(restore.started),
        "finished": hooks.iso(restore.finished),
        "duration_s": _seconds(restore.duration) if restore.finished and restore.started else None,
        "rto_s": _seconds(restore.rto),
        "rto_target_s": _seconds(restore.rto_target),
        "sent_at": hooks.iso(timezone.now()),  # inside the signed body: replays can be refused
    }


def run_pre_hooks(restore: Restore) -> str:
    """The target's pre-hooks; the reason to fail the restore ("" to go on)."""
    target = restore.restore_target
    if target is None or not target.has_hooks:
        return ""
    return hooks.run_pre_hooks(
        restore,
        target,
        make_payload=payload,
        untouched=f"the restore did not start writing to target {target.name}",
    )


def run_post_hooks(restore: Restore) -> None:
    """The target's post-hooks with the finished restore; never raises."""
    target = restore.restore_target
    if target is not None and target.has_hooks:
        hooks.run_post_hooks(restore, target, make_payload=payload)
