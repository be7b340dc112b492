"""What a pitr_restore failover step does, with the portal's models (the step kind itself,
recovery.failover.steps.pitr, knows no Django; RecoveryConfig.ready() registers this with
recovery.failover.services, as the failover package may not import recovery's models).

Live: a point-in-time restore into a new directory under a registered data directory
target, on a port of its range, started when asked; its Restore row carries the failover's
declared time, so both measure the same RTO. Test mode: a restore test to the same point
in scratch, removed afterwards (recorded like any restore test).
"""

from backups.models import Source, Trigger
from recovery import pitr_restores, restore_tests, runner
from recovery.models import PitrPoint, RestoreTarget, RestoreTest
from recovery.restore_targets import NotAllowed


def run_pitr_step(params: dict, ctx, failover_run) -> tuple[bool, str]:
    source = Source.objects.filter(name=params["source"]).first()
    if source is None:
        return False, f"no source named {params['source']}"
    try:
        at = None if params["at"] == "latest" else pitr_restores.parse_point(params["at"])
    except ValueError as exc:
        return False, str(exc)
    if ctx.test_mode:
        return _in_scratch(source, at)
    target = RestoreTarget.objects.filter(
        name=params["target"], kind=RestoreTarget.Kind.DATADIR
    ).first()
    if target is None:
        return False, f"no data directory restore target named {params['target']}"
    try:
        restore = pitr_restores.start_pitr_restore(
            source,
            at=at,
            data_dir=f"{target.path.rstrip('/')}/{params['directory']}",
            port=params["port"],
            start=params["start"],
            restore_target=target,
            failure_type=failover_run.runbook.failure_type,
            declared_at=failover_run.declared_at,
        )
    except (ValueError, NotAllowed, runner.Busy) as exc:
        return False, str(exc)
    restore = pitr_restores.execute_pitr_restore(restore)
    return restore.status == "succeeded", _summary(
        f"restore #{restore.pk}", restore.target_time, restore.recovered_to, restore.error
    ) + (f"; running on port {restore.port}" if restore.start_server and not restore.error else "")


def _in_scratch(source, at) -> tuple[bool, str]:
    try:
        test = restore_tests.start_restore_test(source, trigger=Trigger.MANUAL, at=at)
    except (ValueError, runner.Busy, restore_tests.NoCopyThere) as exc:
        return False, str(exc)
    if at is None:
        RestoreTest.objects.filter(pk=test.pk).update(pitr_point=PitrPoint.NEWEST)
        test.pitr_point = PitrPoint.NEWEST
    test = restore_tests.execute_restore_test(test)
    phases = ", ".join(f"{p['name']} {p['seconds']:.1f} s" for p in test.phases or [])
    line = _summary(
        f"restore test #{test.pk} in scratch", test.target_time, test.recovered_to, test.error
    )
    return test.passed, f"{line} ({phases}; scratch copy removed)"


def _summary(what, target, recovered, error) -> str:
    point = target.isoformat() if target else "the latest point"
    reached = recovered.isoformat() if recovered else "nothing"
    return f"{what}: {point}, recovered to {reached}" + (f"; {error}" if error else "")
