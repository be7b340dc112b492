"""One code path for a drill: views, tasks and commands call these functions.

Starting a drill declares the failure (the clock starts), snapshots the plan's scenarios
and starts the first one. Automated scenarios hand their work to the recovery app
(restore tests, failover runs) which workers execute; `sync()` reads their results and
moves the drill on. People tick checklist items and acknowledge call-outs. The end is
refused until every scenario finished and the cleanup was checked.
"""

import logging
from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from backups.models import Trigger
from dr_portal import audit
from dr_portal.lib.durations import format_duration
from dr_portal.lib.queue import enqueue
from dr_portal.models import RunEvent
from dr_portal.runs import ACTIVE, PROCESS_EVENTS, IllegalTransition, RunStatus
from drills import callout, cleanup
from drills.journal import actor as _actor
from drills.journal import event
from drills.models import (
    SCENARIO_DONE,
    CleanupState,
    DrillRun,
    DrillStatus,
    DrillTransitionError,
    ScenarioKind,
    ScenarioRun,
    ScenarioStatus,
)
from incidents.alerts import recover
from incidents.models import FollowUp
from recovery import restore_tests
from recovery.copies import newest_good_backup
from recovery.failover.models import FailoverRun, RunMode
from recovery.targets import RPOTarget, RTOTarget, Verdict

log = logging.getLogger(__name__)


class DrillRefused(Exception):
    """The drill cannot start as planned; the message lists every reason."""


class ScenarioUnavailable(Exception):
    """A scenario kind whose machinery (another app) is not installed here."""


# --- small helpers --------------------------------------------------------------------


def _has_failover_fk() -> bool:
    return any(f.name == "failover_run" for f in ScenarioRun._meta.get_fields())


# --- starting ---------------------------------------------------------------------------


def start_drill(plan, user=None, declared_at=None) -> DrillRun:
    """Declare the failure, snapshot the scenarios, start the first; refuse a broken plan."""
    problems = plan.problems()
    if problems:
        raise DrillRefused(" ".join(problems))
    with transaction.atomic():
        drill = DrillRun.objects.create(
            plan=plan,
            plan_name=plan.name,
            declared_at=declared_at or timezone.now(),
            started_by=_actor(user)[0],
            time_budget=plan.time_budget,
        )
        plan_systems = list(plan.systems.all())
        for position, scenario in enumerate(plan.scenarios.all(), 1):
            srun = ScenarioRun.objects.create(
                drill=drill,
                scenario=scenario,
                position=position,
                kind=scenario.kind,
                title=scenario.title,
                instructions=scenario.instructions,
                failure_type=scenario.failure_type,
                live=getattr(scenario, "live", False),
            )
            srun.systems.set(_scenario_systems(scenario, plan_systems))
            for index, text in enumerate(scenario.checklist_items, 1):
                srun.items.create(position=index, text=text[:500])
        event(
            drill,
            f"Drill started: failure declared (plan “{plan.name}”)",
            user,
            at=drill.declared_at,
        )
        audit.record("drill start", drill, user=user, detail=f"plan {plan.name}")

    transaction.on_commit(lambda: recover(plan.alert_key(), f"Drill “{plan.name}” started"))
    first = drill.scenario_runs.order_by("position").first()
    if first is not None:
        start_scenario(first, user, at=drill.declared_at)
    return drill


def _scenario_systems(scenario, plan_systems):
    if scenario.kind == ScenarioKind.DATABASE_FAILURE:
        systems = {
            link.source.system
            for link in scenario.source_links.select_related("source__system")
            if link.source_id
        }
        return list(systems) or plan_systems
    runbook = getattr(scenario, "runbook", None)
    if scenario.kind in (ScenarioKind.FAILOVER, ScenarioKind.NETWORK_FAILURE) and runbook:
        return [runbook.system]
    return plan_systems


def start_scenario(srun: ScenarioRun, user=None, at=None):
    """pending -> running: the scenario's failure is injected now; hand off its work."""
    drill = srun.drill
    if drill.status != DrillStatus.RUNNING:
        raise DrillTransitionError(
            f"The drill is {drill.get_status_display().lower()}; nothing more can start."
        )
    at = at or timezone.now()
    with transaction.atomic():
        moved = ScenarioRun.objects.filter(pk=srun.pk, status=ScenarioStatus.PENDING).update(
            status=ScenarioStatus.RUNNING, started=at
        )
        if not moved:
            srun.refresh_from_db()
            raise DrillTransitionError(
                f"Scenario “{srun.title}” is already {srun.get_status_display().lower()}."
            )
        srun.refresh_from_db()
        event(drill, f"Scenario {srun.position} “{srun.title}” started", user, srun, at=at)
        try:
            if srun.kind == ScenarioKind.DATABASE_FAILURE:
                _start_restore_tests(srun, user)
            elif srun.kind in (ScenarioKind.FAILOVER, ScenarioKind.NETWORK_FAILURE):
                _start_failover(srun, user)
            elif srun.kind == ScenarioKind.CALLOUT:
                callout.send(srun)
        except ScenarioUnavailable as exc:
            _finish_scenario(srun, ScenarioStatus.FAILED, [str(exc)], error=str(exc))
            event(drill, f"Scenario {srun.position} could not run: {exc}", None, srun)
    return srun


def _start_restore_tests(srun, user):
    scenario = srun.scenario
    links = list(scenario.source_links.select_related("source")) if scenario else []
    errors = []
    for link in links:
        if link.source is None:
            errors.append(f"source “{link.source_name}” was deleted")
            continue
        # Pinned now: a backup finishing after the declared failure would not exist in a
        # real one. None lets the restore test fail with its own "no good backup" message.
        backup_run = newest_good_backup(link.source)
        try:
            test = restore_tests.start_restore_test(
                link.source, backup_run=backup_run, trigger=Trigger.MANUAL, user=_actor(user)[0]
            )
        except restore_tests.Busy as exc:
            errors.append(f"{exc}; it started before this drill, so it cannot measure the drill")
            continue
        srun.restore_tests.add(test)
        restore_tests.enqueue_restore_test(test)
        event(
            srun.drill,
            f"Restore test #{test.pk} of {link.source.name} queued into scratch",
            None,
            srun,
        )
    if errors:
        raise ScenarioUnavailable("; ".join(errors))
    if not links:
        raise ScenarioUnavailable("no source to restore")


def _start_failover(srun, user):
    scenario = srun.scenario
    runbook = getattr(scenario, "runbook", None) if scenario else None
    if not _has_failover_fk():
        raise ScenarioUnavailable(
            "failover runbooks are not available in this installation yet; this scenario "
            "was not run"
        )
    if runbook is None:
        raise ScenarioUnavailable("the runbook of this scenario was deleted")

    mode = RunMode.LIVE if srun.live else RunMode.TEST
    try:
        run = FailoverRun.start(runbook, mode, user=_actor(user)[0], declared_at=srun.started)
    except Exception as exc:  # LiveRunExists and friends: the scenario fails with the reason
        raise ScenarioUnavailable(str(exc)) from exc
    ScenarioRun.objects.filter(pk=srun.pk).update(failover_run=run)
    srun.failover_run = run
    event(srun.drill, f"{run} queued ({mode} mode)", None, srun)


# --- evaluating -------------------------------------------------------------------------


def _finish_scenario(srun, status, reasons, *, error="", **fields):
    now = timezone.now()
    moved = ScenarioRun.objects.filter(pk=srun.pk, status=ScenarioStatus.RUNNING).update(
        status=status, finished=now, reasons=reasons, error=error[:5000], **fields
    )
    srun.refresh_from_db()
    return bool(moved)


def _verdict_reasons(srun, rto, rto_target, rpo=None, rpo_target=None):
    reasons = []
    if rto is not None and rto_target is not None and rto > rto_target:
        reasons.append(
            f"RTO {format_duration(rto)} is over the {format_duration(rto_target)} target"
        )
    if rpo is not None and rpo_target is not None and rpo > rpo_target:
        reasons.append(
            f"RPO {format_duration(rpo)} is over the {format_duration(rpo_target)} target"
        )
    return reasons


def evaluate_database(srun) -> bool:
    """Finish a database-failure scenario once all its restore tests are done."""
    tests = list(srun.restore_tests.select_related("source"))
    if not tests or any(t.status in ACTIVE for t in tests):
        return False
    reasons = []
    for t in tests:
        if t.status != RunStatus.SUCCEEDED:
            first = (t.error or t.get_status_display()).splitlines()[0][:300]
            reasons.append(f"restore test #{t.pk} of {t.source} {t.status}: {first}")
    recovered = max(t.finished for t in tests)
    rto = recovered - srun.started
    rto_target = RTOTarget.for_failure(srun.failure_type)
    worst = None  # (ratio, rpo, target)
    for t in tests:
        if t.data_at is not None:
            age = max(timedelta(0), srun.started - t.data_at)
        elif t.data_age is not None:
            age = t.data_age
        else:
            if t.status == RunStatus.SUCCEEDED:
                reasons.append(f"restore test #{t.pk} of {t.source} could not tell the data age")
            continue
        target = RPOTarget.for_data_class(t.source.data_class)
        ratio = age / target if target else 0
        if worst is None or ratio > worst[0]:
            worst = (ratio, age, target)
    rpo, rpo_target = (worst[1], worst[2]) if worst else (None, None)
    reasons += _verdict_reasons(srun, rto, rto_target, rpo, rpo_target)
    status = ScenarioStatus.FAILED if reasons else ScenarioStatus.PASSED
    done = _finish_scenario(
        srun,
        status,
        reasons,
        recovered_at=recovered if not any(t.status != RunStatus.SUCCEEDED for t in tests) else None,
        rto=rto,
        rto_target=rto_target,
        rpo=rpo,
        rpo_target=rpo_target,
    )
    if done:
        event(srun.drill, _result_text(srun), None, srun)
    return done


def evaluate_failover(srun) -> bool:
    run = getattr(srun, "failover_run", None)
    if run is None:
        return False
    if run.status in ACTIVE:
        return False
    reasons = []
    if run.status != RunStatus.SUCCEEDED:
        first = (run.error or run.get_status_display()).splitlines()[0][:300]
        reasons.append(f"{run} {run.status}: {first}")
    # The runbook's RTO runs from the declared failure (the scenario's start) to the last
    # verification step that passed; without one, recovery was not shown.
    rto = run.rto
    rto_target = RTOTarget.for_failure(srun.failure_type) or run.rto_target
    if rto is None and run.status == RunStatus.SUCCEEDED:
        reasons.append(
            f"{run} measured no RTO: no verification step passed (in test mode, steps with "
            "side effects are only shown, not run)"
        )
    reasons += _verdict_reasons(srun, rto, rto_target)
    status = ScenarioStatus.FAILED if reasons else ScenarioStatus.PASSED
    done = _finish_scenario(
        srun,
        status,
        reasons,
        recovered_at=srun.started + rto if rto is not None and not reasons else None,
        rto=rto,
        rto_target=rto_target,
    )
    if done:
        event(srun.drill, _result_text(srun), None, srun)
    return done


def _manual_target(srun):
    target = RTOTarget.for_failure(srun.failure_type)
    if target is None and srun.scenario is not None:
        target = srun.scenario.time_budget
    return target


def complete_scenario(srun, user=None, note="") -> ScenarioRun:
    """Close a manual or call-out scenario with what was done; unticked items fail it."""
    if srun.drill.status != DrillStatus.RUNNING:
        raise DrillTransitionError("The drill has ended; its scenarios can no longer change.")
    if srun.status != ScenarioStatus.RUNNING:
        raise DrillTransitionError(
            f"Scenario “{srun.title}” is {srun.get_status_display().lower()}, not running."
        )
    if srun.kind not in (ScenarioKind.MANUAL, ScenarioKind.CALLOUT):
        raise DrillTransitionError(
            "Automated scenarios finish when their restore test or failover run finishes."
        )
    reasons = []
    if srun.kind == ScenarioKind.MANUAL:
        items = list(srun.items.all())
        open_items = [i for i in items if i.done_at is None]
        if open_items:
            reasons.append(
                f"{len(open_items)} of {len(items)} checklist items not done: "
                + "; ".join(i.text for i in open_items[:3])
            )
        problems = [i for i in items if i.problem]
        for item in problems:
            reasons.append(f"problem at “{item.text}”" + (f": {item.note}" if item.note else ""))
        ticks = [i.done_at for i in items if i.done_at]
        recovered = max(ticks) if ticks and not open_items else None
    else:
        acks = list(srun.acks.all())
        if not acks:
            reasons.append("nobody was called out (the plan has no participants)")
        missing = [a.contact_name for a in acks if a.acknowledged_at is None]
        if missing:
            reasons.append("not acknowledged by " + ", ".join(missing))
        times = [a.acknowledged_at for a in acks if a.acknowledged_at]
        recovered = max(times) if times and not missing else None
    rto = (recovered - srun.started) if recovered else None
    target = _manual_target(srun)
    reasons += _verdict_reasons(srun, rto, target)
    status = ScenarioStatus.FAILED if reasons else ScenarioStatus.PASSED
    if not _finish_scenario(
        srun, status, reasons, recovered_at=recovered, rto=rto, rto_target=target
    ):
        raise DrillTransitionError(f"Scenario “{srun.title}” was finished by someone else.")
    text = _result_text(srun)
    if note:
        text += f" — {note}"
    event(srun.drill, text, user, srun)
    sync(srun.drill, user=user)
    return srun


def _result_text(srun) -> str:
    parts = [f"Scenario {srun.position} “{srun.title}” {srun.get_status_display().lower()}"]
    if srun.rto is not None:
        parts.append(f"RTO {format_duration(srun.rto)}")
    if srun.rpo is not None:
        parts.append(f"RPO {format_duration(srun.rpo)}")
    text = ", ".join(parts)
    if srun.reasons:
        text += ": " + "; ".join(srun.reasons)
    return text


def sync(drill: DrillRun, user=None) -> DrillRun:
    """Read automated results, start the next scenario, queue the cleanup check when done."""
    if drill.status != DrillStatus.RUNNING:
        return drill
    for srun in drill.scenario_runs.filter(status=ScenarioStatus.RUNNING).order_by("position"):
        if srun.kind == ScenarioKind.DATABASE_FAILURE:
            evaluate_database(srun)
        elif srun.kind in (ScenarioKind.FAILOVER, ScenarioKind.NETWORK_FAILURE):
            evaluate_failover(srun)
    runs = list(drill.scenario_runs.order_by("position"))
    if not any(s.status == ScenarioStatus.RUNNING for s in runs):
        pending = [s for s in runs if s.status == ScenarioStatus.PENDING]
        if pending:
            try:  # started by the drill itself, not by whoever's page happened to look
                start_scenario(pending[0], None)
            except DrillTransitionError:
                pass  # another request started it
        elif drill.cleanup_state == CleanupState.NOT_CHECKED:
            request_cleanup_check(drill, user)
    drill.refresh_from_db()
    return drill


# --- people's actions -------------------------------------------------------------------


def tick_item(item, user, note="", problem=False):
    # Fresh rows: an item reached through a stale scenario run must not judge by old state.
    srun = ScenarioRun.objects.select_related("drill", "scenario").get(pk=item.scenario_run_id)
    drill = srun.drill
    if drill.status != DrillStatus.RUNNING:
        raise DrillTransitionError("The drill has ended; its checklist can no longer change.")
    if srun.status != ScenarioStatus.RUNNING:
        raise DrillTransitionError(
            f"Scenario “{srun.title}” is {srun.get_status_display().lower()}: "
            "items can only be ticked while it runs."
        )
    now = timezone.now()
    actor = _actor(user)[0]
    moved = (
        type(item)
        .objects.filter(pk=item.pk, done_at__isnull=True)
        .update(done_at=now, done_by=actor, note=(note or "")[:500], problem=bool(problem))
    )
    if not moved:
        item.refresh_from_db()
        who = item.done_by.get_username() if item.done_by else "someone"
        raise DrillTransitionError(f"“{item.text}” was already ticked by {who}.")
    item.refresh_from_db()
    text = f"Ticked “{item.text}”" + (" (problem)" if problem else "")
    if note:
        text += f" — {note}"
    event(drill, text, user, srun, at=now)
    audit.record("drill tick", drill, user=user, detail=text[:1000])
    if not srun.items.filter(done_at__isnull=True).exists():
        srun.refresh_from_db()
        complete_scenario(srun, user)
    return item


def acknowledge(ack, via, user=None):
    """Record a call-out acknowledgement once; later clicks keep the first time."""
    srun = ScenarioRun.objects.select_related("drill", "scenario").get(pk=ack.scenario_run_id)
    now = timezone.now()
    moved = (
        type(ack)
        .objects.filter(pk=ack.pk, acknowledged_at__isnull=True)
        .update(acknowledged_at=now, via=via, acknowledged_by=_actor(user)[0])
    )
    ack.refresh_from_db()
    if not moved:
        return False
    audit.record("drill callout ack", srun.drill, user=user, detail=f"{ack.contact_name} via {via}")
    how = "with the link in the message" if via == "link" else "in the portal"
    by = f" (ticked by {user.get_username()})" if user is not None and via == "portal" else ""
    event(
        srun.drill,
        f"{ack.contact_name} acknowledged the call-out {how} after "
        f"{format_duration(ack.time_to_ack)}{by}",
        user if via == "portal" else None,
        srun,
        at=now,
    )
    if (
        srun.status == ScenarioStatus.RUNNING
        and srun.drill.status == DrillStatus.RUNNING
        and not srun.acks.filter(acknowledged_at__isnull=True).exists()
    ):
        srun.refresh_from_db()
        try:
            complete_scenario(srun, user if via == "portal" else None)
        except DrillTransitionError:
            pass
    return True


# --- cleanup ----------------------------------------------------------------------------


def request_cleanup_check(drill, user=None):
    DrillRun.objects.filter(pk=drill.pk).update(cleanup_state=CleanupState.CHECKING)
    drill.cleanup_state = CleanupState.CHECKING
    event(drill, "Cleanup check queued", user)
    enqueue("drills.tasks.verify_cleanup", drill.pk, group="drills")


def verify_cleanup(drill) -> str:
    """Remove and check gone what the drill created; record one row per resource."""
    results = cleanup.check(drill)
    drill.cleanup_checks.all().delete()
    for result in results:
        drill.cleanup_checks.create(**result)
    state = CleanupState.VERIFIED if all(r["gone"] for r in results) else CleanupState.FAILED
    DrillRun.objects.filter(pk=drill.pk).update(
        cleanup_state=state, cleanup_checked_at=timezone.now()
    )
    left = [r["resource"] for r in results if not r["gone"]]
    removed = [r["resource"] for r in results if r.get("removed")]
    text = (
        f"Cleanup checked: {len(results)} resource(s) gone"
        if not left
        else ("Cleanup found left-overs: " + ", ".join(left))
    )
    if removed:
        text += f" (removed by the check: {', '.join(removed)})"
    event(drill, text)
    return state


# --- ending ---------------------------------------------------------------------------


def compute_verdict(drill) -> tuple[str, list[str], dict]:
    runs = list(drill.scenario_runs.order_by("position"))
    reasons = []
    for srun in runs:
        if srun.status == ScenarioStatus.FAILED:
            reasons.append(
                f"Scenario {srun.position} “{srun.title}” failed: "
                + "; ".join(srun.reasons or [srun.error or "failed"])
            )
        elif srun.status == ScenarioStatus.NOT_RUN:
            reasons.append(f"Scenario {srun.position} “{srun.title}” was not run")
    recovered = [s.recovered_at for s in runs if s.recovered_at]
    figures = {"rto_achieved": None, "rpo_achieved": None, "rpo_target": None}
    if recovered and len(recovered) == len(runs):
        figures["rto_achieved"] = max(recovered) - drill.declared_at
        if figures["rto_achieved"] > drill.time_budget:
            reasons.append(
                f"the drill took {format_duration(figures['rto_achieved'])}, over its "
                f"{format_duration(drill.time_budget)} time budget"
            )
    worst = None
    for srun in runs:
        if srun.rpo is not None:
            ratio = srun.rpo / srun.rpo_target if srun.rpo_target else 0
            if worst is None or ratio > worst[0]:
                worst = (ratio, srun.rpo, srun.rpo_target)
    if worst:
        figures["rpo_achieved"], figures["rpo_target"] = worst[1], worst[2]
    if drill.cleanup_state == CleanupState.FAILED:
        left = ", ".join(c.resource for c in drill.cleanup_checks.filter(gone=False))
        reasons.append(f"cleanup found left-overs: {left}")
    elif drill.cleanup_state != CleanupState.VERIFIED:
        reasons.append("cleanup was not verified")
    return (Verdict.FAILED if reasons else Verdict.PASSED), reasons, figures


def end_drill(drill, user=None) -> DrillRun:
    """running -> ended with the verdict; refused twice, with scenarios open or cleanup unchecked."""
    drill.refresh_from_db()
    if drill.status != DrillStatus.RUNNING:
        raise DrillTransitionError(
            f"This drill already {'ended' if drill.status == DrillStatus.ENDED else 'was aborted'} "
            f"at {drill.ended_at:%Y-%m-%d %H:%M:%S} UTC; it cannot end again."
        )
    sync(drill, user)
    open_runs = list(drill.scenario_runs.exclude(status__in=list(SCENARIO_DONE)))
    if open_runs:
        names = ", ".join(f"“{s.title}” ({s.get_status_display().lower()})" for s in open_runs)
        raise DrillTransitionError(
            f"Scenarios still open: {names}. Finish them, or abort the drill."
        )
    drill.refresh_from_db()
    if drill.cleanup_state in (CleanupState.NOT_CHECKED, CleanupState.CHECKING):
        raise DrillTransitionError(
            "The cleanup has not been checked yet: wait for the check (or run it again) "
            "before ending the drill."
        )
    verdict, reasons, figures = compute_verdict(drill)
    now = timezone.now()
    drill.end(verdict, by=_actor(user)[0], at=now, reasons=reasons, **figures)
    event(
        drill,
        f"Drill ended: {drill.get_verdict_display().lower()}"
        + (": " + "; ".join(reasons) if reasons else ""),
        user,
        at=now,
    )
    audit.record("drill end", drill, user=user, detail=f"verdict {verdict}")
    _note_linked_incidents(drill)
    return drill


def _note_linked_incidents(drill):
    """Write the drill's end as a run event: incidents linked to it get a timeline entry.

    The event is consumed by incidents.events after commit (and every minute as a safety net).
    """
    RunEvent.record(drill, RunEvent.Transition.FINISHED, drill.status)
    enqueue(PROCESS_EVENTS, group="events")


def abort_drill(drill, user=None, reason="") -> DrillRun:
    """Stop now; keep what ran; the verdict says aborted. Queued work is cancelled."""
    drill.refresh_from_db()
    if drill.status != DrillStatus.RUNNING:
        raise DrillTransitionError(f"This drill is already {drill.get_status_display().lower()}.")
    sync(drill, user)
    now = timezone.now()
    with transaction.atomic():
        # The drill is closed last, with its figures, in one update: that is what is sealed.
        drill.scenario_runs.filter(status=ScenarioStatus.PENDING).update(
            status=ScenarioStatus.NOT_RUN
        )
        for srun in drill.scenario_runs.filter(status=ScenarioStatus.RUNNING):
            for test in srun.restore_tests.filter(status=RunStatus.QUEUED):
                try:
                    test.cancel(f"drill #{drill.pk} aborted")
                except IllegalTransition:
                    pass
            run = getattr(srun, "failover_run", None)
            if run is not None and hasattr(run, "request_cancel"):
                run.request_cancel(user=_actor(user)[0])
            ScenarioRun.objects.filter(pk=srun.pk).update(
                status=ScenarioStatus.FAILED,
                finished=now,
                reasons=[*srun.reasons, "the drill was aborted while this scenario ran"],
            )
        reasons = ["aborted" + (f": {reason}" if reason else "")]
        _, _, figures = compute_verdict(drill)
        drill.abort(by=_actor(user)[0], at=now, reasons=reasons, **figures)
        event(drill, "Drill aborted" + (f": {reason}" if reason else ""), user, at=now)
        audit.record("drill abort", drill, user=user, detail=reason[:500])
        _note_linked_incidents(drill)
    # Whatever ran may have left scratch databases: check them even for an aborted drill.
    request_cleanup_check(drill, user)
    return drill


# --- findings and follow-ups ------------------------------------------------------------


def add_finding(drill, text, user=None, severity="medium", scenario_run=None):
    text = (text or "").strip()
    if not text:
        raise DrillTransitionError("Describe the issue found.")
    finding = drill.findings.create(
        text=text, severity=severity, scenario_run=scenario_run, created_by=_actor(user)[0]
    )
    event(drill, f"Finding ({finding.get_severity_display().lower()}): {text}", user)
    return finding


def add_followup(drill, text, user=None, owner_contact=None, due=None):
    text = (text or "").strip()
    if not text:
        raise DrillTransitionError("Describe the follow-up action.")
    item = FollowUp.objects.create(
        text=text[:300],
        owner_contact=owner_contact,
        due=due,
        content_type=ContentType.objects.get_for_model(DrillRun),
        object_id=drill.pk,
    )
    owner = f", owner {owner_contact.name}" if owner_contact else ""
    when = f", due {due:%Y-%m-%d}" if due else ""
    event(drill, f"Follow-up added: {text}{owner}{when}", user)
    return item


def followups(drill):
    return FollowUp.objects.for_object(drill).select_related("owner_contact", "owner_user")
