"""manage.py backup_now JOB [--json]: run a backup job in the foreground (same code as the task)."""

import json as jsonlib
import sys

from django.core.management.base import BaseCommand, CommandError

from backups import services
from backups.models import BackupJob
from dr_portal import audit
from dr_portal.runs import RunStatus


class Command(BaseCommand):
    help = "Run a backup job now, in this process. Exit status 0 only if it succeeded."

    def add_arguments(self, parser):
        parser.add_argument("job", help="job name (or id)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, job, json: bool = False, **options):
        as_json = json
        found = BackupJob.objects.filter(name=job).first()
        if found is None and job.isdigit():
            found = BackupJob.objects.filter(pk=int(job)).first()
        if found is None:
            raise CommandError(f"no backup job named {job}")
        with audit.command_context("backup_now"):
            try:
                run = services.start_run(found, "command")
            except services.JobBusy as exc:
                return self._report(None, as_json, error=str(exc))
            audit.record("run backup", found, detail=f"run #{run.pk} from the command line")
            try:
                run = services.execute(run)
            except Exception:  # recorded on the run by execute(); report it below
                run.refresh_from_db()
        return self._report(run, as_json)

    def _report(self, run, as_json, error=""):
        if run is None:
            result = {
                "run": None,
                "status": "failed",
                "bytes_stored": 0,
                "sha256": "",
                "duration_s": 0,
                "copies": [],
                "error": error,
            }
        else:
            duration = run.duration
            result = {
                "run": run.pk,
                "job": run.job_name,
                "status": run.status,
                "bytes_read": run.bytes_read,
                "bytes_stored": run.bytes_stored,
                "sha256": run.sha256,
                "duration_s": round(duration.total_seconds(), 3) if duration else 0,
                "data_taken_at": run.data_taken_at.isoformat() if run.data_taken_at else None,
                "copies": [
                    {
                        "destination": c.destination.name,
                        "location": c.location,
                        "bytes_stored": c.bytes_stored,
                    }
                    for c in run.copies.select_related("destination").order_by("destination__name")
                ],
                "anomalies": [a.get("message", "") for a in run.anomalies or []],
                "error": run.error,
            }
        if as_json:
            self.stdout.write(jsonlib.dumps(result))
        else:
            self.stdout.write(
                f"run #{result['run']}: {result['status']}, stored {result['bytes_stored']} bytes"
                f" in {result['duration_s']} s"
            )
            for copy in result["copies"]:
                self.stdout.write(f"  {copy['destination']}: {copy['location']}")
            if result["error"]:
                self.stderr.write(f"error: {result['error']}")
        if result["status"] != RunStatus.SUCCEEDED:
            sys.exit(1)
