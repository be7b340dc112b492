"""manage.py failover RUNBOOK [--live --yes] [--json]: run a failover runbook in the foreground.

The run is created and executed exactly as from the portal (FailoverRun.start, then the
worker's task function, here in this process), so scripted and tested runs measure what
the portal measures. Test mode unless --live, which needs --yes.
Exit status: 0 the run succeeded, 1 it did not, 2 bad arguments.
"""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandError

from dr_portal import audit
from recovery.failover import tasks
from recovery.failover.models import FailoverRun, LiveRunExists, Runbook, RunMode


def _bad(message):
    return CommandError(message, returncode=2)


def find_runbook(ref: str) -> Runbook:
    """A runbook by id or by name (a name two systems share must be given as an id)."""
    runbooks = Runbook.objects.select_related("system")
    found = list(runbooks.filter(pk=int(ref))) if ref.isdigit() else []
    found = found or list(runbooks.filter(name=ref))
    if not found:
        raise _bad(f"no runbook with id or name {ref!r}")
    if len(found) > 1:
        which = ", ".join(f"#{r.pk} ({r.system})" for r in found)
        raise _bad(f"several runbooks are named {ref!r}: {which}; give the id")
    return found[0]


def summary(run: FailoverRun) -> dict:
    steps = []
    for step in run.step_runs.order_by("position", "pk"):
        took = step.finished - step.started if step.started and step.finished else None
        steps.append(
            {
                "name": step.name,
                "kind": step.kind,
                "status": step.status,
                "duration_s": round(took.total_seconds(), 3) if took is not None else None,
            }
        )
    return {
        "run": run.pk,
        "runbook": run.runbook.name,
        "system": run.system.name,
        "status": run.status,
        "mode": run.mode,
        "rto_s": _secs(run.rto),
        "rto_target_s": _secs(run.rto_target),
        "verdict": run.verdict,  # the RTO against its target: met, missed or "" (not measured)
        # data lost at promotion (declared failure − newest heartbeat on the new primary)
        "rpo_s": _secs(run.rpo),
        "lag_at_promotion_bytes": run.promotion_lag_bytes,
        "lag_at_promotion_s": _secs(run.promotion_lag),
        # a test run that skipped side effects or left checks unproven is a rehearsal only
        "all_steps_exercised": not (run.skipped_effects or run.unproven_checks),
        "steps": steps,
        "error": run.error,
    }


def _secs(value):
    return round(value.total_seconds(), 3) if value is not None else None


class Command(BaseCommand):
    help = (
        "Run a failover runbook (by id or name) in the foreground, in test mode unless --live "
        "--yes. Exit status 0 when the run succeeded, 1 when it did not, 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("runbook", help="runbook id or name")
        parser.add_argument("--live", action="store_true", help="perform the side effects")
        parser.add_argument("--yes", action="store_true", help="confirm a live run")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, runbook, live=False, yes=False, json=False, **options):
        if live and not yes:
            raise _bad("a live failover changes production: add --yes to confirm it")
        book = find_runbook(runbook)
        if not book.steps.exists():
            raise _bad(f"runbook {book} has no steps")
        mode = RunMode.LIVE if live else RunMode.TEST
        with audit.command_context("failover"):
            try:
                run = FailoverRun.start(book, mode, queue=False)
            except LiveRunExists as exc:
                raise CommandError(str(exc), returncode=1) from None
            audit.record(f"start {mode} failover", book, detail=f"run #{run.pk}")
            tasks.run_failover(run.pk)
        run.refresh_from_db()
        result = summary(run)
        if json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            rto = f", RTO {result['rto_s']:g} s" if result["rto_s"] is not None else ""
            if result["rpo_s"] is not None:
                rto += f", data lost {result['rpo_s']:g} s"
            self.stdout.write(f"{run}: {run.status}{rto}")
            for step in result["steps"]:
                took = f" ({step['duration_s']:g} s)" if step["duration_s"] is not None else ""
                self.stdout.write(f"  {step['name']} [{step['kind']}]: {step['status']}{took}")
            if run.error:
                self.stdout.write(f"error: {run.error}")
        if run.status != "succeeded":
            raise SystemExit(1)
