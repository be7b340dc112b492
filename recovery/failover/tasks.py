"""django-q2 entry point: run one failover, step by step, recording every step as it goes."""

import logging
import time
from datetime import timedelta

from django.db import close_old_connections, connection
from django.utils import timezone

from dr_portal.runs import IllegalTransition, LeaseLost, survives_disconnects
from recovery.failover import services
from recovery.failover.models import FailoverRun, RunbookStep, StepRun
from recovery.failover.steps import KINDS, Hooks, StepCancelled, StepTimedOut, parse_step, run_steps
from recovery.failover.steps.runner import Outcome
from recovery.targets import judge

log = logging.getLogger(__name__)

CONFIRM_POLL = 1.0  # seconds between looks at a manual step's row
CANCEL_POLL = 1.0


def _pause(seconds: float):
    """Between looks at a manual step's row (a seam for tests that confirm meanwhile)."""
    time.sleep(seconds)


class RunHooks(Hooks):
    """Mirror the runner's progress into StepRun rows and answer cancel/confirm from the database."""

    def __init__(self, run: FailoverRun, rows: dict):
        self.run = run
        self.rows = rows  # id(spec) -> StepRun
        self.parents = {}  # id(rollback spec) -> StepRun of the step it undoes
        self._cancel_checked = 0.0
        self._cancel = False
        self._lease_checked = 0.0
        self._position = max((r.position for r in rows.values()), default=0)

    def row(self, spec, rollback_of) -> StepRun:
        row = self.rows.get(id(spec))
        if row is None:  # a rollback step runs: its row is created now
            self._position += 1
            parent = self.rows.get(id(rollback_of))
            row = StepRun.objects.create(
                run=self.run,
                step_id=spec.key,
                position=self._position,
                name=spec.name,
                kind=spec.kind,
                definition={},
                side_effects=spec.side_effects,
                description=_describe(spec),
                rollback_of=parent,
            )
            self.rows[id(spec)] = row
        return row

    @survives_disconnects
    def started(self, spec, attempt, rollback_of):
        row = self.row(spec, rollback_of)
        fields = {"status": StepRun.Status.RUNNING, "attempts": attempt}
        if row.started is None:
            fields["started"] = timezone.now()
        StepRun.objects.filter(pk=row.pk).update(**fields)
        for k, v in fields.items():
            setattr(row, k, v)
        label = "rollback" if rollback_of is not None else "step"
        self.run.beat(phase=f"{label} {row.position}: {spec.name}")

    @survives_disconnects
    def finished(self, outcome: Outcome):
        row = self.row(outcome.spec, outcome.rollback_of)
        fields = {
            "status": outcome.status,
            "finished": outcome.finished,
            "attempts": outcome.attempts,
            "output": outcome.output,
            "automated_time": timedelta(seconds=outcome.automated_s),
            "waited_for_person": timedelta(seconds=outcome.people_s) if outcome.people_s else None,
            "retry_time": timedelta(seconds=outcome.retry_s) if outcome.retry_s else None,
        }
        if row.started is None:
            fields["started"] = outcome.started
        StepRun.objects.filter(pk=row.pk).update(**fields)
        self.run.append_log(
            f"{row.name}: {outcome.status.replace('_', ' ')}"
            + (f" after {outcome.attempts} attempts" if outcome.attempts > 1 else "")
        )

    @survives_disconnects
    def cancelled(self) -> bool:
        if self._cancel:
            return True
        if time.monotonic() - self._cancel_checked >= CANCEL_POLL:
            self._cancel_checked = time.monotonic()
            self._cancel = FailoverRun.objects.filter(
                pk=self.run.pk, cancel_requested_at__isnull=False
            ).exists()
        return self._cancel

    @survives_disconnects
    def lost(self, fresh=False) -> str:
        """Fencing: a conditional query on (run, worker, RUNNING); at most once a second
        while a step polls, every time before a step starts."""
        if not fresh and not self.run.lease_lost:
            if time.monotonic() - self._lease_checked < CANCEL_POLL:
                return ""
        self._lease_checked = time.monotonic()
        try:
            self.run.check_lease()
        except LeaseLost as exc:
            log.warning("%s", exc)
            self.run.append_log(f"stopping, rolling back what this worker did: {exc}")
            return str(exc)
        return ""

    def wait_for_person(self, spec, deadline, cancelled=None):
        cancelled = cancelled or self.cancelled
        row = self.rows[id(spec)]
        StepRun.objects.filter(pk=row.pk).update(status=StepRun.Status.WAITING)
        self.run.beat(phase=f"waiting for confirmation: {spec.name}")
        while True:
            confirmed = (
                StepRun.objects.filter(pk=row.pk, confirmed_at__isnull=False)
                .values_list("confirmed_by__username", "confirmed_by_id")
                .first()
            )
            if confirmed:
                StepRun.objects.filter(pk=row.pk).update(status=StepRun.Status.RUNNING)
                username, user_id = confirmed
                return username or (f"user #{user_id}" if user_id else "someone")
            if cancelled():
                raise StepCancelled("cancelled while waiting for confirmation")
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepTimedOut("nobody confirmed this step before its timeout")
            self.run.beat()
            _pause(min(CONFIRM_POLL, left))

    def log(self, line):
        self.run.append_log(line)

    def pitr_restore(self, params, ctx):
        run_pitr_step = services.pitr_restore()
        if run_pitr_step is None:
            return (
                False,
                "point-in-time restores are not available (the recovery app is not loaded)",
            )
        return run_pitr_step(params, ctx, self.run)

    def restore(self, params, ctx):
        run_restore_step = services.restore()
        if run_restore_step is None:
            return False, "restores are not available (the recovery app is not loaded)"
        return run_restore_step(params, ctx, self.run)


def _describe(spec):
    return KINDS[spec.kind].describe(spec.params)


def build_specs(run: FailoverRun):
    """StepSpecs from the run's snapshot, secrets revealed here (in the worker) and nowhere else."""
    rows = list(run.step_runs.filter(rollback_of__isnull=True).order_by("position"))
    step_ids = {r.definition.get("step_id") for r in rows}
    for r in rows:
        step_ids.update(rb.get("step_id") for rb in r.definition.get("rollback", []))
    secrets = {s.pk: s.secret for s in RunbookStep.objects.filter(pk__in=step_ids - {None})}
    revealed = []

    def secret_of(defn):
        sealed = secrets.get(defn.get("step_id"))
        if defn.get("has_secret") and not sealed:
            raise ValueError(f"step {defn['name']!r}: its secret is gone (the step was deleted?)")
        if not sealed:
            return ""
        value = sealed.reveal()
        revealed.append(value)
        return value

    specs, by_spec, errors = [], {}, []
    for r in rows:
        defn = dict(r.definition)
        rollback_defs = defn.pop("rollback", [])
        clean = _strip(defn)
        clean["secret"] = secret_of(defn)
        clean["rollback"] = []
        for rb in rollback_defs:
            rb_clean = _strip(rb)
            rb_clean["secret"] = secret_of(rb)
            clean["rollback"].append(rb_clean)
        spec, problems = parse_step(clean, f"step {r.position}", allow_command=True)
        errors.extend(problems)
        if problems:  # the step that is not valid any more shows why, on its own row
            StepRun.objects.filter(pk=r.pk).update(
                status=StepRun.Status.FAILED, output="not run: " + "; ".join(problems)
            )
        if spec:
            spec.key = defn.get("step_id")
            for rb_spec, rb_defn in zip(spec.rollback, rollback_defs, strict=True):
                rb_spec.key = rb_defn.get("step_id")
            specs.append(spec)
            by_spec[id(spec)] = r
    if errors:
        raise ValueError("the runbook's steps are not valid any more: " + "; ".join(errors))
    return specs, by_spec, revealed


def _strip(defn):
    return {k: v for k, v in defn.items() if k not in ("step_id", "has_secret", "rollback")}


def run_failover(run_id: int):
    """Claim the run, execute its steps in order, record the RTO and its split, finish."""
    if not connection.in_atomic_block:  # (tests call this inside their transaction)
        close_old_connections()
    run = FailoverRun.objects.select_related("runbook", "system").filter(pk=run_id).first()
    if run is None or not run.claim():
        return  # gone, or another delivery has it
    # The claim wrote the run's "started" event: incidents.events sends the alert.
    revealed = []
    try:
        with run.heartbeat():
            specs, rows, revealed = build_specs(run)
            hooks = RunHooks(run, rows)
            result = run_steps(specs, hooks, test_mode=run.mode == "test", secrets=revealed)
        record(run, result)
    except Exception as exc:
        log.exception("failover run %s broke", run_id)
        run.fail_unexpectedly(exc, revealed)


def promotion_figures(run: FailoverRun, facts: dict) -> dict:
    """The run's fields from a promotion's facts: the lag it promoted with, and the data
    lost (declared failure − newest heartbeat; 0 when a heartbeat is newer than the
    declaration, as when the failure is declared after the primary went down)."""
    if not facts:
        return {}
    fields = {"promotion_lag_bytes": facts.get("lag_bytes")}
    if facts.get("lag_seconds") is not None:
        fields["promotion_lag"] = timedelta(seconds=facts["lag_seconds"])
    beat = facts.get("newest_heartbeat")
    if beat is not None:
        fields["newest_heartbeat_at"] = beat
        fields["rpo"] = max(timedelta(0), run.declared_at - beat)
    return fields


def record(run: FailoverRun, result):
    """Finish the run with its RTO (declared failure → last verification passed) and split."""
    fields = {
        "automated_time": timedelta(seconds=result.automated_s),
        "people_time": timedelta(seconds=result.people_s),
        "retry_time": timedelta(seconds=result.retry_s),
        "skipped_effects": result.skipped_effects,
        "unproven_checks": result.unproven_checks,
    }
    if result.status in ("succeeded", "partial") and result.verified_at:
        rto = result.verified_at - run.declared_at
        fields["rto"] = rto
        fields["verdict"] = judge(rto, run.rto_target)
    fields.update(promotion_figures(run, result.facts("pg_promote")))
    error = result.error
    if result.status == "cancelled":
        run.refresh_from_db(fields=["cancel_requested_by"])
        who = run.cancel_requested_by.get_username() if run.cancel_requested_by else "a user"
        error = error.replace("cancelled", f"cancelled by {who}", 1)
    if result.status == "partial" and not error:
        failed = [o.spec.name for o in result.outcomes if not o.ok]
        error = "steps failed but the run continued: " + ", ".join(failed)
    if result.status in ("succeeded", "partial") and not result.verified_at:
        error = (error + "; " if error else "") + "no verification step passed: RTO not measured"
    try:
        run.finish(result.status, error, **fields)
    except IllegalTransition:
        log.warning("failover run %s was finished elsewhere (reaped?)", run.pk)
