"""manage.py verify_backup (RUN_ID | --latest JOB | --source SOURCE [--at ISO8601])
[--destination NAME] [--json]: a restore test in the foreground, optionally reading only
one destination's copy; --source tests a point-in-time source by restoring to a point."""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand, CommandError

from backups.models import BackupJob, BackupRun, Destination, Source, Trigger
from dr_portal import audit
from recovery import copies, pitr_restores, restore_tests, runner


class Command(BaseCommand):
    help = (
        "Restore-test one backup now, in this process (same code as the scheduled task). "
        "Exit status 0 when it passed, 1 otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("run", nargs="?", type=int, help="backup run id")
        parser.add_argument("--latest", metavar="JOB", help="the newest good backup of this job")
        parser.add_argument(
            "--destination",
            metavar="NAME",
            help="read only this destination's copy, as if the others were lost "
            "(with --latest: the newest good backup it holds)",
        )
        parser.add_argument(
            "--source",
            metavar="SOURCE",
            help="a point-in-time source: restore it to a point in scratch (by default "
            "alternately its newest recoverable point and a random one)",
        )
        parser.add_argument(
            "--at", metavar="ISO8601", help="with --source: the point (UTC unless zoned)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, run=None, latest=None, json=False, destination=None, **options):
        if sum(x is not None for x in (run, latest, options.get("source"))) != 1:
            raise CommandError("give one of a backup RUN_ID, --latest JOB or --source SOURCE")
        if options.get("at") and not options.get("source"):
            raise CommandError("--at goes with --source (a point-in-time source)")
        pinned = self._pinned(destination)
        if options.get("source"):
            return self._point_in_time(options["source"], options.get("at"), pinned, json)
        if run is not None:
            backup = BackupRun.objects.select_related("source").filter(pk=run).first()
            if backup is None:
                raise CommandError(f"no backup run #{run}")
        else:
            job = BackupJob.objects.filter(name=latest).first()
            if job is None and latest.isdigit():
                job = BackupJob.objects.filter(pk=int(latest)).first()
            if job is None:
                raise CommandError(f"no backup job named {latest}")
            backup = (
                copies.good_backups(job.source, pinned)
                .filter(job=job)
                .order_by("-data_taken_at", "-pk")
                .first()
            )
            if backup is None:
                where = f" with a live copy at {pinned.name}" if pinned else ""
                return self._report(
                    None, json, f"job {job.name} has no good backup{where} to verify"
                )
        if backup.source is None:
            raise CommandError(f"backup run #{backup.pk} has no source any more")
        with audit.command_context("verify_backup"):
            try:
                test = restore_tests.start_restore_test(
                    backup.source, backup_run=backup, trigger=Trigger.COMMAND, destination=pinned
                )
            except (runner.Busy, restore_tests.NoCopyThere) as exc:
                return self._report(None, json, str(exc))
            audit.record(
                "run restore test",
                backup.source,
                detail=f"restore test #{test.pk} of run #{backup.pk}"
                + (f" from {pinned.name}" if pinned else ""),
            )
            test = restore_tests.execute_restore_test(test)
        return self._report(test, json)

    def _pinned(self, destination):
        if destination is None:
            return None
        pinned = Destination.objects.filter(name=destination).first()
        if pinned is None:
            raise CommandError(f"no destination named {destination}")
        return pinned

    def _point_in_time(self, name, at_text, pinned, as_json):
        source = Source.objects.filter(name=name).first()
        if source is None:
            raise CommandError(f"no source named {name}")
        if not source.pitr:
            raise CommandError(
                f"{name} has no point-in-time recovery: give a RUN_ID or --latest JOB"
            )
        try:
            at = pitr_restores.parse_point(at_text) if at_text else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        with audit.command_context("verify_backup"):
            try:
                test = restore_tests.start_restore_test(
                    source, trigger=Trigger.COMMAND, destination=pinned, at=at
                )
            except (runner.Busy, restore_tests.NoCopyThere, ValueError) as exc:
                return self._report(None, as_json, str(exc))
            audit.record(
                "run restore test",
                source,
                detail=f"restore test #{test.pk} of {source.name} to "
                + (at.isoformat() if at else "a point of its window")
                + (f" from {pinned.name}" if pinned else ""),
            )
            test = restore_tests.execute_restore_test(test)
        return self._report(test, as_json)

    def _report(self, test, as_json, error=""):
        if test is None:
            result = {
                "test": None,
                "status": "failed",
                "checks": [],
                "rto_s": None,
                "rpo_s": None,
                "error": error,
            }
        else:
            result = {
                "test": test.pk,
                "backup_run": test.backup_run_id,
                "copy_read": test.copy_used,
                "status": "passed" if test.passed else "failed",
                "checks": [
                    {
                        "name": c["name"],
                        "passed": c["outcome"] == "passed",
                        "outcome": c["outcome"],
                        "observed": c["observed"],
                    }
                    for c in test.checks
                ],
                "rto_s": round(test.rto.total_seconds(), 3) if test.rto else None,
                "rpo_s": round(test.data_age.total_seconds(), 1) if test.data_age else None,
                "rpo_basis": test.data_basis,
                "point": test.pitr_point or None,
                "target": test.target_time.isoformat() if test.target_time else None,
                "recovered_to": test.recovered_to.isoformat() if test.recovered_to else None,
                "phases": {p["name"]: p["seconds"] for p in test.phases or []},
                "warnings": list(test.warnings or []),
                "error": test.error,
            }
        if as_json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            self.stdout.write(f"restore test {result.get('test')}: {result['status']}")
            if result.get("copy_read"):
                self.stdout.write(f"  read {result['copy_read']}")
            for check in result["checks"]:
                self.stdout.write(
                    f"  {check['name']}: {check['outcome']} (observed {check['observed']})"
                )
            if result["rto_s"] is not None:
                self.stdout.write(f"  RTO {result['rto_s']} s, data age {result['rpo_s']} s")
            for warning in result.get("warnings", []):
                self.stdout.write(f"  note: {warning}")
            if result["error"]:
                self.stdout.write(f"  error: {result['error']}")
        sys.exit(0 if result["status"] == "passed" else 1)
