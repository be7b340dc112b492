"""What a `restore` failover step does, with the portal's models (the step kind itself,
recovery.failover.steps.restore, knows no Django; RecoveryConfig.ready() registers this
with recovery.failover.services).

Live: recovery.restores.start_restore + execute_restore, the restore page's own path: a
registered target, its permission rules held to the person who started the failover run,
the previous data kept aside, the source's checks on the target, the failover's declared
time as the restore's (both measure the same RTO). Test mode: a restore test of the same
backup in scratch, removed afterwards.
"""

from backups.models import BackupRun, Source, Trigger
from recovery import restore_tests, restores, runner
from recovery.models import RestoreTarget
from recovery.restore_targets import NotAllowed


def _phases(phases) -> str:
    return ", ".join(f"{p['name']} {p['seconds']:.1f} s" for p in phases or [])


def _backup(source, ref) -> tuple[BackupRun | None, str]:
    if ref == "newest":
        return None, ""
    run = BackupRun.objects.filter(pk=ref, source=source).first()
    return run, "" if run else f"{source} has no backup run #{ref}"


def run_restore_step(params: dict, ctx, failover_run) -> tuple[bool, str]:
    source = Source.objects.filter(name=params["source"]).first()
    if source is None:
        return False, f"no source named {params['source']}"
    backup_run, problem = _backup(source, params["backup"])
    if problem:
        return False, problem
    if ctx.test_mode:
        return _in_scratch(source, backup_run)
    target = RestoreTarget.objects.filter(name=params["target"]).first()
    if target is None:
        return False, f"no registered restore target named {params['target']}"
    try:
        restore = restores.start_restore(
            source,
            restore_target=target,
            database_name=params.get("database") or "",
            backup_run=backup_run,
            failure_type=failover_run.runbook.failure_type,
            declared_at=failover_run.declared_at,
            overwrite=params["overwrite"],
            user=failover_run.requested_by,
        )
    except (ValueError, NotAllowed, runner.Busy) as exc:
        return False, str(exc)
    ctx.log(f"restore #{restore.pk} of {source} into {target.name} started")
    restore = restores.execute_restore(restore)
    line = (
        f"restore #{restore.pk} of backup run #{restore.backup_run_id} into {target.name}: "
        f"{restore.status} ({_phases(restore.phases)})"
    )
    if restore.kept_aside:
        line += f"; previous data kept aside at {restore.kept_aside}"
    if restore.error:
        line += f"; {restore.error}"
    return restore.status == "succeeded", line


def _in_scratch(source, backup_run) -> tuple[bool, str]:
    try:
        test = restore_tests.start_restore_test(
            source, backup_run=backup_run, trigger=Trigger.MANUAL
        )
    except (ValueError, runner.Busy, restore_tests.NoCopyThere) as exc:
        return False, str(exc)
    test = restore_tests.execute_restore_test(test)
    line = f"restore test #{test.pk} in scratch: {'passed' if test.passed else 'FAILED'}"
    line += f" ({_phases(test.phases)}; scratch copy removed)"
    return test.passed, line + (f"; {test.error}" if test.error else "")
